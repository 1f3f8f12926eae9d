//! Declarations as data: auth with secrets from the environment or a file, the store URL, the
//! output schema field, and a declared bearer auth on a real call.

use stitchapi::config::{AuthConfig, SeamConfig, StoreConfig, StoreSpec};
use stitchapi::{Input, Stitch};

use crate::support::{Answer, Upstream};

fn seam(text: &str) -> SeamConfig {
    toml::from_str(text).unwrap()
}

#[test]
fn a_missing_env_secret_names_the_field_and_the_variable() {
    let config = seam(
        r#"
        base_url = "https://api.example.com"
        [stitches.me]
        path = "/me"
        auth = { type = "bearer", token = { env = "STITCHAPI_IT_SURELY_UNSET_TOKEN" } }
        "#,
    );
    let error = config.build().unwrap_err();
    assert_eq!(error.field(), "stitches.me.auth.token");
    assert_eq!(
        error.problem(),
        "the environment variable STITCHAPI_IT_SURELY_UNSET_TOKEN is not set"
    );
    assert!(
        error
            .fix()
            .contains("export STITCHAPI_IT_SURELY_UNSET_TOKEN=")
    );
}

#[test]
fn every_auth_type_has_a_form_and_hides_inline_secrets() {
    // Cargo sets CARGO_MANIFEST_DIR for the test process: a variable whose value is known.
    let from_env = env!("CARGO_MANIFEST_DIR");
    let dir = std::env::temp_dir().join(format!("stitchapi-it-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let password = dir.join("password");
    std::fs::write(&password, "file-pass\n").unwrap();
    let config = seam(&format!(
        r#"
        base_url = "https://api.example.com"
        auth = {{ type = "oauth2", token_url = "https://auth.example.com/token", client_id = "app", client_secret = {{ env = "CARGO_MANIFEST_DIR" }}, scope = "read" }}
        [stitches.a]
        path = "/a"
        auth = {{ type = "api_key", key = "inline-key-value", in = "query", name = "key" }}
        [stitches.b]
        path = "/b"
        auth = {{ type = "basic", user = "ann", password = {{ file = "{}" }} }}
        [stitches.c]
        path = "/c"
        auth = {{ type = "cookie_session", cookie = "sid", login = {{ method = "POST", path = "/login" }}, body = {{ user = "ann", password = {{ env = "CARGO_MANIFEST_DIR" }} }} }}
        "#,
        password.display()
    ));
    let debug = format!("{config:?}");
    assert!(!debug.contains("inline-key-value"), "{debug}");
    assert!(debug.contains("SecretConfig(env CARGO_MANIFEST_DIR)"));
    let catalog = config.build().unwrap();
    let debug = format!("{catalog:?}");
    for secret in ["inline-key-value", from_env, "file-pass"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(matches!(
        config.stitches["b"].shared.auth,
        Some(AuthConfig::Basic { .. })
    ));

    let error = toml::from_str::<SeamConfig>(
        "base_url = \"https://x.example\"\nauth = { type = \"bearer\", tokn = \"x\" }",
    )
    .unwrap_err();
    assert!(error.message().contains("unknown field `tokn`"), "{error}");
    let error = toml::from_str::<SeamConfig>(
        "base_url = \"https://x.example\"\nauth = { type = \"kerberos\" }",
    )
    .unwrap_err();
    assert!(
        error.message().contains("unknown variant `kerberos`"),
        "{error}"
    );
}

#[test]
fn the_store_is_a_url_or_a_table() {
    let config =
        seam("base_url = \"https://x.example\"\nstore = \"rediss://cache.internal:6380/0\"");
    let spec = config.store.as_ref().unwrap().spec().unwrap();
    assert!(
        matches!(spec, StoreSpec::Redis { url, password: None } if url == "rediss://cache.internal:6380/0")
    );
    assert!(matches!(
        StoreConfig::from("memory").spec().unwrap(),
        StoreSpec::Memory
    ));
    let config = seam(
        "base_url = \"https://x.example\"\nstore = { url = \"upstash+https://eu1.upstash.io\" }",
    );
    let error = config.store.as_ref().unwrap().spec().unwrap_err();
    let error = error.build_error().unwrap();
    assert_eq!(error.field(), "store.token");
    let error = StoreConfig::from("mongodb://db").spec().unwrap_err();
    assert_eq!(error.build_error().unwrap().field(), "store");
    let config = seam(
        "base_url = \"https://x.example\"\n[stitches.a]\npath = \"/a\"\nschema = { type = \"object\", required = [\"id\"] }",
    );
    assert_eq!(
        config.stitches["a"].schema.as_ref().unwrap()["required"][0],
        "id"
    );
}

#[test]
fn a_password_in_a_store_url_never_shows_in_debug() {
    let config = seam(
        "base_url = \"https://x.example\"\nstore = \"redis://default:hunter2-pw@cache:6379/0\"",
    );
    let store = config.store.as_ref().unwrap();
    assert_eq!(
        store.redacted_url(),
        "redis://default:<redacted>@cache:6379/0"
    );
    let spec = store.spec().unwrap();
    for shown in [
        format!("{config:?}"),
        format!("{store:?}"),
        format!("{spec:?}"),
    ] {
        assert!(!shown.contains("hunter2-pw"), "{shown}");
        assert!(shown.contains("default:<redacted>@cache:6379"), "{shown}");
    }
    // Only the password is hidden: a user name alone, a path and a query stay as written.
    for url in [
        "redis://cache:6379/0",
        "redis://default@cache:6379",
        "denokv:/var/kv.sqlite",
        "redis://cache/0?protocol=resp3#x@y:z",
    ] {
        assert_eq!(StoreConfig::from(url).redacted_url(), url);
    }
}

#[test]
fn a_redis_password_may_come_from_the_environment_but_from_one_place_only() {
    let config = seam(
        "base_url = \"https://x.example\"\nstore = { url = \"redis://cache:6379/0\", password = { env = \"CARGO_MANIFEST_DIR\" } }",
    );
    let spec = config.store.as_ref().unwrap().spec().unwrap();
    let StoreSpec::Redis { url, password } = &spec else {
        panic!("{spec:?}");
    };
    assert_eq!(url, "redis://cache:6379/0");
    let password = password.as_ref().unwrap();
    assert_eq!(password.expose().unwrap(), env!("CARGO_MANIFEST_DIR"));
    assert!(!format!("{spec:?}").contains(env!("CARGO_MANIFEST_DIR")));

    let both = StoreConfig {
        password: Some(stitchapi::config::SecretConfig::Inline("pw".into())),
        ..StoreConfig::from("redis://:pw@cache:6379")
    };
    let error = both.spec().unwrap_err();
    let error = error.build_error().unwrap();
    assert_eq!(error.field(), "store.password");
    assert!(
        error.problem().contains("already holds a password"),
        "{error}"
    );
    assert!(!error.to_string().contains(":pw@"), "{error}");

    let unset = seam(
        "base_url = \"https://x.example\"\nstore = { url = \"redis://cache:6379\", password = { env = \"STITCHAPI_IT_SURELY_UNSET_PW\" } }",
    );
    let error = unset.store.as_ref().unwrap().spec().unwrap_err();
    assert_eq!(error.build_error().unwrap().field(), "store.password");

    let misplaced = StoreConfig {
        password: Some(stitchapi::config::SecretConfig::Inline("pw".into())),
        ..StoreConfig::from("denokv:/tmp/kv.sqlite")
    };
    let error = misplaced.spec().unwrap_err();
    assert!(
        error
            .build_error()
            .unwrap()
            .problem()
            .contains("only a Redis store"),
        "{error}"
    );
}

#[test]
fn deno_kv_and_cloudflare_stores_have_forms() {
    let config = seam(
        "base_url = \"https://x.example\"\nstore = { url = \"denokv+http://127.0.0.1:4512\", token = { env = \"CARGO_MANIFEST_DIR\" } }",
    );
    let spec = config.store.as_ref().unwrap().spec().unwrap();
    assert!(
        matches!(&spec, StoreSpec::DenoKv { location, token: Some(_) } if location == "http://127.0.0.1:4512"),
        "{spec:?}"
    );
    let spec = StoreConfig::from("denokv:/var/lib/kv.sqlite")
        .spec()
        .unwrap();
    assert!(
        matches!(&spec, StoreSpec::DenoKv { location, token: None } if location == "/var/lib/kv.sqlite"),
        "{spec:?}"
    );
    let error = StoreConfig::from("denokv:").spec().unwrap_err();
    assert_eq!(error.build_error().unwrap().field(), "store");
    let error = StoreConfig::from("denokv+http://127.0.0.1:4512")
        .spec()
        .unwrap_err();
    assert_eq!(error.build_error().unwrap().field(), "store.token");
    assert!(matches!(
        StoreConfig::from("cloudflare-kv:STITCH_KV").spec().unwrap(),
        StoreSpec::WorkersKv { binding } if binding == "STITCH_KV"
    ));
    assert!(matches!(
        StoreConfig::from("cloudflare-do:STITCH_DO").spec().unwrap(),
        StoreSpec::DurableObject { binding } if binding == "STITCH_DO"
    ));
    assert!(StoreConfig::from("cloudflare-kv:").spec().is_err());
}

#[tokio::test]
async fn a_declared_bearer_token_is_read_from_the_environment_on_the_call() {
    let upstream = Upstream::start().await;
    upstream.script("/me", [Answer::json(200, serde_json::json!({"ok": true}))]);
    let config = seam(&format!(
        "base_url = \"{}\"\nauth = {{ type = \"bearer\", token = {{ env = \"CARGO_MANIFEST_DIR\" }} }}\n[stitches.me]\npath = \"/me\"",
        upstream.url()
    ));
    let catalog = config.build().unwrap();
    let me: &Stitch = catalog.get("me").unwrap();
    let out = me.call(Input::new()).await.unwrap();
    assert_eq!(out["ok"], true);
    assert_eq!(
        upstream.hits()[0].headers["authorization"],
        format!("Bearer {}", env!("CARGO_MANIFEST_DIR")).as_str()
    );
}
