"""The MCP tools of streaming (agents/mcp.py registers them)."""


def register_tools(server, call) -> None:
    pass
