//! JSON Schemas of a declared stitch's input (the [`CallInput`](crate::CallInput) form) and
//! output, for the front doors that describe stitches to their callers (`serve`'s
//! `/openapi.json`, `mcp`'s tool list).

use serde_json::{Map, Value, json};

use crate::declarations::StitchInputs;

impl StitchInputs {
    /// The JSON Schema (draft 2020-12) of this stitch's call input: `params` with one
    /// required property per template variable, `query` with any scalar values, and `body`
    /// when the method sends one.
    ///
    /// ```
    /// use stitchapi_cli::Declarations;
    ///
    /// let file = "base_url = \"https://api.example.com\"\n[stitches.get_user]\npath = \"/users/{id}\"\n";
    /// let declarations = Declarations::parse("stitch.toml".as_ref(), file)?;
    /// let schema = declarations.inputs("get_user")?.input_schema();
    /// assert_eq!(schema["properties"]["params"]["required"][0], "id");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn input_schema(&self) -> Value {
        let scalar = json!({"type": ["string", "number", "boolean"]});
        let value = json!({
            "anyOf": [scalar, {"type": "array", "items": scalar}]
        });
        let params: Map<String, Value> = self
            .params
            .iter()
            .map(|name| (name.clone(), value.clone()))
            .collect();
        let mut properties = Map::new();
        properties.insert(
            "params".to_owned(),
            json!({
                "type": "object",
                "description": format!("Template variables of {}", self.template),
                "properties": params,
                "required": self.params,
                "additionalProperties": false,
            }),
        );
        properties.insert(
            "query".to_owned(),
            json!({
                "type": "object",
                "description": "Query parameters (a list repeats the name)",
                "additionalProperties": value,
            }),
        );
        if self.body {
            properties.insert(
                "body".to_owned(),
                json!({"description": "The JSON request body"}),
            );
        }
        let mut schema = json!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        });
        if !self.params.is_empty() {
            schema["required"] = json!(["params"]);
        }
        schema
    }

    /// The JSON Schema of the output: the declared `schema`, or any JSON value.
    pub fn output_schema(&self) -> Value {
        self.schema.clone().unwrap_or_else(|| json!({}))
    }
}
