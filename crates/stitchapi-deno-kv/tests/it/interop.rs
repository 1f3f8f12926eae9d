//! Deno itself (from npm, `--unstable-kv`) on the same `denokv serve` as the Rust store: it
//! reads what the store wrote, the store reads what it wrote, and a counter incremented from
//! both sides nets the exact sum. Our KV Connect client speaks the real protocol.

use std::time::Duration;

use stitchapi::store::StitchStore;

use crate::support::{Denokv, Scratch, deno_command, deno_eval};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deno_reads_what_the_store_wrote_and_the_other_way_round() {
    let server = Denokv::start();
    let store = server.store();
    store
        .set("greeting", Some("hello from rust".into()), None)
        .await
        .unwrap();
    store
        .set(
            "for-a-minute",
            Some("brief".into()),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    for _ in 0..3 {
        store.increment("hits", None).await.unwrap();
    }
    // A counter with a TTL is the `{n, deadline}` envelope.
    let window = Some(Duration::from_secs(60));
    assert_eq!(store.increment("window", window).await.unwrap(), 1);
    assert_eq!(store.increment("window", window).await.unwrap(), 2);

    let stdout = deno_eval(
        &server,
        r#"
const text = new TextDecoder();
const out = {};
out.greeting = text.decode((await kv.get(["stitchapi", "greeting"])).value);
const hits = (await kv.get(["stitchapi", "hits"])).value;
out.hits = `${hits.constructor.name} ${hits.value}`;
const brief = (await kv.get(["stitchapi", "for-a-minute"])).value;
out.briefHeader = Array.from(brief.slice(0, 4));
out.briefPayload = text.decode(brief.slice(12));
// A counter without a TTL is a KvU64: Deno adds to it with sum.
out.summed = (await kv.atomic().sum(["stitchapi", "hits"], 4n).commit()).ok;
await kv.set(["stitchapi", "from-deno"], new TextEncoder().encode("hello from deno"));
// A counter with a TTL: read, add one to the i64 at byte 12, write checked on the entry.
for (;;) {
  const entry = await kv.get(["stitchapi", "window"]);
  const next = new Uint8Array(entry.value);
  const view = new DataView(next.buffer);
  view.setBigInt64(12, view.getBigInt64(12) + 1n);
  const expireIn = Number(view.getBigUint64(4)) - Date.now();
  const done = await kv.atomic().check(entry)
    .set(["stitchapi", "window"], next, expireIn > 0 ? { expireIn } : {}).commit();
  if (done.ok) { out.window = Number(view.getBigInt64(12)); break; }
}
console.log(JSON.stringify(out));
"#,
    )
    .await;
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).expect(&stdout);
    assert_eq!(out["greeting"], "hello from rust", "{out}");
    assert_eq!(out["hits"], "KvU64 3", "{out}");
    assert_eq!(
        out["briefHeader"],
        serde_json::json!([0xF5, b'S', 1, b'v']),
        "{out}"
    );
    assert_eq!(out["briefPayload"], "brief", "{out}");
    assert_eq!(out["summed"], true, "{out}");
    assert_eq!(out["window"], 3, "{out}");

    assert_eq!(
        store.get("from-deno").await.unwrap().as_deref(),
        Some(&b"hello from deno"[..])
    );
    assert_eq!(store.increment("hits", None).await.unwrap(), 3 + 4 + 1);
    assert_eq!(store.increment("window", window).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_counter_incremented_from_rust_and_deno_at_once_nets_the_sum() {
    const RUST_TASKS: i64 = 4;
    const RUST_EACH: i64 = 100;
    let server = Denokv::start();
    let store = server.store();
    let deno_dir = Scratch::new("deno-dir");
    let deno = deno_command(
        &server,
        // Deno adds until the Rust side is done and says stop, and prints how often it added.
        r#"let sums = 0;
while (!(await kv.get(["stitchapi", "stop"])).value) {
  const done = await kv.atomic().sum(["stitchapi", "both"], 1n).commit();
  if (!done.ok) throw new Error("sum not committed");
  if (++sums > 1000000) throw new Error("never told to stop");
}
console.log(sums);"#,
        &deno_dir.0,
    )
    .spawn()
    .expect("spawn deno");
    // Start once Deno is adding: it goes on until told to stop, so the two sides overlap.
    let started = std::time::Instant::now();
    while store.get("both").await.unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Deno never added"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let tasks: Vec<_> = (0..RUST_TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..RUST_EACH {
                    seen.push(store.increment("both", None).await.unwrap());
                }
                seen
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.unwrap());
    }
    store.set("stop", Some("1".into()), None).await.unwrap();
    let output = deno.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "deno failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deno_sums: i64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(deno_sums > 0);
    let total = deno_sums + RUST_TASKS * RUST_EACH;
    assert_eq!(
        store.get("both").await.unwrap().as_deref(),
        Some(total.to_string().as_bytes())
    );
    answers.sort_unstable();
    answers.dedup();
    assert_eq!(
        answers.len() as i64,
        RUST_TASKS * RUST_EACH,
        "no count answered twice"
    );
    let gaps = answers.windows(2).filter(|w| w[1] - w[0] > 1).count();
    assert!(
        gaps > 0,
        "Deno's sums never fell between ours: the sides did not overlap"
    );
}
