"""Admin for agent profiles: capabilities, reported status, and the agent's tokens.

Agents are created with `manage.py create_agent` (user, profile, inboxes, first token), so there
is no add form here. Status is reported by the agent itself (`PUT /api/agents/me/status`) and
shown read-only.
"""
import re

from django import forms
from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from accounts.admin import revoke_tokens, show_new_tokens
from accounts.models import ApiToken
from accounts.services import token_issue
from agents.models import AgentProfile
from messaging.models import MSG_TYPE_RE

_msg_type_re = re.compile(MSG_TYPE_RE)


class AgentProfileForm(forms.ModelForm):
    class Meta:
        model = AgentProfile
        fields = ("description", "capabilities")

    def clean_capabilities(self):
        value = self.cleaned_data.get("capabilities")
        if value in (None, ""):
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and _msg_type_re.match(v)
                                                  for v in value):
            raise forms.ValidationError('Give a JSON list of msg_type names, e.g. ["narration", "dialogue"].')
        return list(dict.fromkeys(value))


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    form = AgentProfileForm
    list_display = ("username", "display_name", "capability_list", "status", "task", "progress",
                    "status_updated_at", "last_seen", "active_tokens")
    list_filter = ("status", "last_seen")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__display_name", "description", "task")
    search_help_text = "Username, display name, description or current task."
    ordering = ("user__username",)
    fields = ("user_link", "description", "capabilities", "status", "task", "progress", "status_updated_at",
              "last_seen", "tokens")
    readonly_fields = ("user_link", "status", "task", "progress", "status_updated_at", "last_seen", "tokens")
    actions = ("revoke_tokens_action", "issue_token_action")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            n_active_tokens=Count("user__api_tokens", filter=Q(user__api_tokens__revoked_at__isnull=True)))

    @admin.display(description="username", ordering="user__username")
    def username(self, profile):
        return profile.user.username

    @admin.display(description="display name", ordering="user__display_name")
    def display_name(self, profile):
        return profile.user.shown_name

    @admin.display(description="capabilities")
    def capability_list(self, profile):
        return ", ".join(profile.capabilities or []) or "-"

    @admin.display(description="active tokens", ordering="n_active_tokens")
    def active_tokens(self, profile):
        return profile.n_active_tokens

    @admin.display(description="user")
    def user_link(self, profile):
        url = reverse("admin:accounts_user_change", args=[profile.user_id])
        return format_html('<a href="{}">{}</a>', url, profile.user.username)

    @admin.display(description="tokens")
    def tokens(self, profile):
        tokens = list(ApiToken.objects.filter(user_id=profile.user_id).order_by("-created_at")[:20])
        if not tokens:
            return "none"
        url = reverse("admin:accounts_apitoken_changelist") + f"?user__id__exact={profile.user_id}"
        rows = format_html(
            '<a href="{}">{} tokens (revoke or rotate them there)</a>', url,
            ApiToken.objects.filter(user_id=profile.user_id).count())
        for token in tokens:
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            rows += format_html("<br>{}… {} ({})", token.prefix, token.label or "", state)
        return rows

    def has_add_permission(self, request):
        return False  # `manage.py create_agent NAME --story SLUG` creates the user, profile and inboxes

    def has_delete_permission(self, request, obj=None):
        return False  # an agent's messages reference its user; deactivate the user instead

    @admin.action(description="Revoke every token of the selected agents", permissions=["change"])
    def revoke_tokens_action(self, request, queryset):
        tokens = ApiToken.objects.select_related("user").filter(
            user__agent_profile__in=queryset, revoked_at__isnull=True)
        count = revoke_tokens(self, request, tokens)
        self.message_user(request, ngettext("Revoked %d token.", "Revoked %d tokens.", count) % count)

    @admin.action(description="Issue a new token for the selected agents", permissions=["change"])
    def issue_token_action(self, request, queryset):
        issued = []
        for profile in queryset.select_related("user"):
            raw = token_issue(user=profile.user, label="admin", by=request.user)
            self.log_change(request, profile, "Issued a new token.")
            issued.append((profile.user, "admin", raw))
        # Shown once on the answering page: a message could travel in a cookie (accounts/admin.py).
        return show_new_tokens(self, request, issued) if issued else None
