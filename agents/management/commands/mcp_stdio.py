"""`python manage.py mcp_stdio --agent NAME`: the MCP tools over stdio, for one local agent process.

An MCP client (Claude Desktop, an agent runtime) starts this command and speaks JSON-RPC on its
stdin/stdout; every tool call acts as agent NAME. Whoever can run manage.py can reach the
database anyway, so the command needs no token. stdout carries nothing but the protocol: logs go
to stderr.
"""
import anyio
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from agents.mcp import build_server


class Command(BaseCommand):
    help = "Serve the MCP tools over stdio, acting as the agent NAME (see docs/mcp.md)."

    def add_arguments(self, parser):
        parser.add_argument("--agent", required=True, metavar="NAME", help="The agent's username.")

    def handle(self, *args, agent, **options):
        user = get_user_model().objects.filter(username=agent).first()
        if user is None:
            raise CommandError(f"No agent '{agent}'; create one with `manage.py create_agent {agent}`.")
        if not user.is_agent:
            raise CommandError(f"No agent '{agent}': '{agent}' is a human account, and MCP acts as an agent. "
                               f"Create one with `manage.py create_agent NAME --story SLUG` (a new name), then run "
                               f"`manage.py mcp_stdio --agent NAME`.")
        if not user.is_active:
            raise CommandError(f"Agent '{agent}' is deactivated.")
        close_old_connections()  # the tools open their own, in worker threads
        anyio.run(build_server(agent=user).run_stdio_async)
