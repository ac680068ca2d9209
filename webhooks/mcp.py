"""The MCP tools of webhooks (agents/mcp.py registers them)."""


def register_tools(server, call) -> None:
    pass
