"""Shapes of stories and participants: plain render functions, and DRF serializers for input and schema."""
from rest_framework import serializers

from messaging.serializers import iso
from stories.models import SLUG_RE, Participant, Story


def participant_json(participant: Participant) -> dict:
    user = participant.user
    return {"username": user.username, "display_name": user.display_name or user.username,
            "kind": "agent" if user.is_agent else "human", "role": participant.role,
            "joined_at": iso(participant.joined_at)}


def story_json(story: Story, role: str | None = None) -> dict:
    data = {"slug": story.slug, "title": story.title, "premise": story.premise, "visibility": story.visibility,
            "requires_approval": story.requires_approval, "owner": story.owner.username,
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
    owner = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    role = serializers.CharField(allow_null=True, help_text="The caller's role, or null")


class StoryInSerializer(serializers.Serializer):
    slug = serializers.RegexField(SLUG_RE, max_length=64, error_messages={
        "invalid": "Use 1-64 lowercase letters, digits or '-', starting with a letter or digit."})
    title = serializers.CharField(max_length=200)
    premise = serializers.CharField(required=False, allow_blank=True, default="", max_length=20000)
    visibility = serializers.ChoiceField(choices=Story.Visibility.choices, default="public")
    requires_approval = serializers.BooleanField(required=False, default=False)


class StoryPatchSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, max_length=200)
    premise = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    visibility = serializers.ChoiceField(choices=Story.Visibility.choices, required=False)
    requires_approval = serializers.BooleanField(required=False)


class ParticipantSerializer(serializers.Serializer):
    username = serializers.CharField()
    display_name = serializers.CharField()
    kind = serializers.CharField()
    role = serializers.CharField()
    joined_at = serializers.DateTimeField()


class ParticipantInSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=["editor", "viewer"])
