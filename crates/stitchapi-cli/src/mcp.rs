//! `stitch mcp`: the declared stitches as MCP tools over stdio (the official Rust SDK,
//! `rmcp`).
//!
//! Each stitch is a tool named after it; its input schema is the stitch's
//! [call input](crate::schema) (`params`, `query`, `body`), its output schema the declared
//! JSON Schema when that describes an object. A tool call goes through the full pipeline of
//! the stitches built once at start (throttle, circuit, cache, auth shared by every call for
//! the life of the process), so an agent cannot exceed the declared budget. A failed call is
//! a tool error (`is_error`) whose text is the [`Failure`] JSON (kind and message, never a
//! secret). Only protocol goes to stdout.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;

use crate::CallInput;
use crate::failure::Failure;
use crate::serve::{CallFailure, Front};

/// The MCP server: one tool per declared stitch.
#[derive(Clone, Debug)]
pub struct StitchTools {
    front: Arc<Front>,
}

impl StitchTools {
    /// Tools over `front`'s stitches.
    pub fn new(front: Arc<Front>) -> StitchTools {
        StitchTools { front }
    }

    /// The tools, one per stitch, by name.
    pub fn tools(&self) -> Vec<Tool> {
        let declarations = &self.front.declarations;
        declarations
            .stitches
            .keys()
            .filter_map(|name| declarations.inputs(name).ok())
            .map(|inputs| {
                let mut tool = Tool::new(
                    inputs.name.clone(),
                    format!(
                        "{} {} (declared in {}). Arguments: params (template variables), \
                         query, body.",
                        inputs.method,
                        inputs.template,
                        declarations.file.display()
                    ),
                    object(inputs.input_schema()),
                );
                let output = inputs.output_schema();
                if output["type"] == "object" {
                    tool.output_schema = Some(Arc::new(object(output)));
                }
                tool
            })
            .collect()
    }

    /// Serves the tools over this process's stdin and stdout until the client hangs up.
    pub async fn serve_stdio(self) -> Result<(), std::io::Error> {
        let running = self
            .serve(rmcp::transport::stdio())
            .await
            .map_err(std::io::Error::other)?;
        running.waiting().await.map_err(std::io::Error::other)?;
        Ok(())
    }

    async fn call(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        let input: CallInput = match arguments {
            None => CallInput::default(),
            Some(arguments) => match serde_json::from_value(Value::Object(arguments)) {
                Ok(input) => input,
                Err(e) => {
                    return Ok(tool_error(&Failure::input(format!(
                        "the arguments are not a call input ({e}). Fix: pass \
                         {{\"params\": {{...}}, \"query\": {{...}}, \"body\": ...}}"
                    ))));
                }
            },
        };
        match self.front.call(name, &input, |_| {}).await {
            Ok(value) => {
                let text = serde_json::to_string(&value).unwrap_or_default();
                let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                if value.is_object() {
                    result.structured_content = Some(value);
                }
                Ok(result)
            }
            Err(CallFailure::UnknownStitch(failure)) => {
                Err(ErrorData::invalid_params(failure.message, None))
            }
            Err(failure) => Ok(tool_error(&failure.failure())),
        }
    }
}

fn tool_error(failure: &Failure) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(
        serde_json::to_string(failure).unwrap_or_default(),
    )])
}

/// A schema as the JSON object MCP carries (anything else becomes `{}`).
fn object(schema: Value) -> JsonObject {
    match schema {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

impl ServerHandler for StitchTools {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("stitch", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool calls a declared HTTP endpoint with retry, timeouts, throttle, \
                 cache and auth. Arguments: {\"params\": {template variables}, \"query\": \
                 {...}, \"body\": ...}.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(&request.name, request.arguments)
            .await
            .map(CallToolResponse::from)
    }
}
