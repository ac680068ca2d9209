"""REST views for agents."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import AgentProfile
from agents.services import agent_json, agent_set_status, require_agent
from mythline_site.api import json_object


class FractionField(serializers.FloatField):
    """A number from 0 to 1. DRF's FloatField takes `true` as 1.0; a boolean is not a fraction."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


# The body, for the OpenAPI schema: `agent_set_status` checks the values, for REST as for MCP.
class AgentStatusInSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=AgentProfile.Status.choices)
    task = serializers.CharField(required=False, allow_blank=True, max_length=500)
    progress = FractionField(required=False, allow_null=True, min_value=0, max_value=1)


class AgentSerializer(serializers.Serializer):
    username = serializers.CharField()
    display_name = serializers.CharField()
    description = serializers.CharField()
    capabilities = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    task = serializers.CharField()
    progress = serializers.FloatField(allow_null=True)
    status_updated_at = serializers.DateTimeField(allow_null=True)
    last_seen = serializers.DateTimeField(allow_null=True)


class AgentStatusView(APIView):
    @extend_schema(request=AgentStatusInSerializer, responses=AgentSerializer,
                   summary="The calling agent reports its status, task and progress")
    def put(self, request):
        require_agent(request.user)  # a non-agent gets 403 whatever the body holds
        body = json_object(AgentStatusInSerializer, request)
        agent_set_status(agent=request.user, status=body.get("status"), task=body.get("task", ""),
                         progress=body.get("progress"))
        return Response(agent_json(request.user))
