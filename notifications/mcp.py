"""The MCP tools of notifications (agents/mcp.py registers them)."""


def register_tools(server, call) -> None:
    pass
