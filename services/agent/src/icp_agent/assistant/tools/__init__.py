"""The assistant's tools (spec 9.2), one module per specialist. Every tool returns
`{"status": "success", ...}` or `{"status": "error", "error": "<message>", "code": ...}`."""
