"""Shapes of stories and participants: plain render functions, and DRF serializers for input and schema."""
from rest_framework import serializers

from messaging.serializers import iso
from mythline_site.api import OneOfField
from stories.models import SLUG_RE, Invite, Participant, Story


def participant_json(participant: Participant) -> dict:
    user = participant.user
    return {"username": user.username, "display_name": user.display_name or user.username,
            "kind": "agent" if user.is_agent else "human", "role": participant.role,
            "joined_at": iso(participant.joined_at)}


def invite_json(invite: Invite, *, now=None) -> dict:
    """An invite link as its owner sees it: never its token, nor the token's hash."""
    return {"id": invite.pk, "role": invite.role, "prefix": invite.prefix,
            "created_by": invite.created_by.username, "created_at": iso(invite.created_at),
            "expires_at": iso(invite.expires_at), "revoked_at": iso(invite.revoked_at), "uses": invite.uses,
            "last_used_at": iso(invite.last_used_at),
            "state": invite.state if now is None else invite.state_at(now)}


def story_json(story: Story, role: str | None = None) -> dict:
    data = {"slug": story.slug, "title": story.title, "premise": story.premise, "visibility": story.visibility,
            "requires_approval": story.requires_approval, "agents_suggest": story.agents_suggest,
            "owner": story.owner.username,
            "created_at": iso(story.created_at), "updated_at": iso(story.updated_at)}
    if role is not None or hasattr(story, "caller_role"):
        data["role"] = role if role is not None else story.caller_role
    return data


class StorySerializer(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    premise = serializers.CharField()
    visibility = serializers.ChoiceField(choices=Story.Visibility.choices)
    requires_approval = serializers.BooleanField(
        help_text="Agents propose and wait for a human vote or decision before acting on a plan")
    agents_suggest = serializers.BooleanField(
        help_text="Agents suggest, people accept: an agent's document edit becomes a suggestion")
    owner = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    role = serializers.CharField(allow_null=True, help_text="The caller's role, or null")


class StoryInSerializer(serializers.Serializer):
    slug = serializers.RegexField(SLUG_RE, max_length=64, error_messages={
        "invalid": "Use 1-64 lowercase letters, digits or '-', starting with a letter or digit."})
    title = serializers.CharField(max_length=200)
    premise = serializers.CharField(required=False, allow_blank=True, default="", max_length=20000)
    visibility = OneOfField(choices=Story.Visibility.choices, default="public")
    requires_approval = serializers.BooleanField(required=False, default=False)
    agents_suggest = serializers.BooleanField(required=False, default=False)


class StoryPatchSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, max_length=200)
    premise = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    visibility = OneOfField(choices=Story.Visibility.choices, required=False)
    requires_approval = serializers.BooleanField(required=False)
    agents_suggest = serializers.BooleanField(required=False)


class ParticipantSerializer(serializers.Serializer):
    username = serializers.CharField()
    display_name = serializers.CharField()
    kind = serializers.CharField()
    role = serializers.CharField()
    joined_at = serializers.DateTimeField()


class ParticipantInSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = OneOfField(choices=["editor", "viewer"])


class InviteSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    role = serializers.ChoiceField(choices=["editor", "viewer"])
    prefix = serializers.CharField(help_text="The token's first 8 characters, to tell links apart")
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    uses = serializers.IntegerField(help_text="Accepted uses of the link")
    last_used_at = serializers.DateTimeField(allow_null=True)
    state = serializers.ChoiceField(choices=["live", "expired", "revoked"])


class InviteCreatedSerializer(InviteSerializer):
    token = serializers.CharField(help_text="The raw token: shown only in this answer, never again")
    url = serializers.CharField(help_text="The page that accepts it: /invite/<token>/")


class InviteInSerializer(serializers.Serializer):
    role = OneOfField(choices=["editor", "viewer"])
    expires_in_hours = serializers.IntegerField(required=False, min_value=1, max_value=720, default=168)


class InviteAcceptedSerializer(ParticipantSerializer):
    story = serializers.CharField(help_text="The story's slug")
