"""Admin for users (humans and agents) and API tokens.

Tokens: only the prefix is ever shown, never the stored hash. Revoke and rotate are admin
actions; a rotated token's new raw value is shown once, in the success message. Tokens are not
added from the admin (use `manage.py issue_token` or the rotate action) and never deleted:
a revoked token stays as part of the audit trail.
"""
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from accounts.models import ApiToken, User
from accounts.services import token_revoke, token_rotate, user_set_active

admin.site.site_header = "Mythline admin"
admin.site.site_title = "Mythline admin"
admin.site.index_title = "Stories, agents and the message audit trail"

TOKEN_FIELDS = ("prefix_shown", "label", "created_at", "last_used_at", "revoked_at")


def revoke_tokens(modeladmin, request, tokens) -> int:
    """Revoke each active token in `tokens`, log it, and return how many were revoked."""
    revoked = 0
    for token in tokens:
        if token.revoked_at is None:
            token_revoke(token=token)
            modeladmin.log_change(request, token, "Revoked the token.")
            revoked += 1
    return revoked


def rotate_tokens(modeladmin, request, tokens) -> int:
    """Rotate each active token; the new raw value is shown once, in a success message."""
    rotated = 0
    for token in tokens:
        if token.revoked_at is not None:
            messages.warning(request, f"Token {token.prefix}… of {token.user.username} is revoked; "
                                      "it was not rotated.")
            continue
        raw = token_rotate(token=token)
        modeladmin.log_change(request, token, "Rotated: revoked and replaced by a new token.")
        messages.success(request, f"New token for {token.user.username}"
                                  f"{f' ({token.label})' if token.label else ''}: {raw} "
                                  "(copy it now: it is shown only once).")
        rotated += 1
    return rotated


class TokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("active", "Active"), ("revoked", "Revoked"))

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix_shown", "user", "user_kind", "label", "created_at", "last_used_at", "revoked_at",
                    "active")
    list_filter = (TokenStateFilter, "user__is_agent", "created_at", "last_used_at")
    list_select_related = ("user",)
    search_fields = ("prefix", "user__username", "label")
    search_help_text = "Token prefix, username or label."
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    fields = ("prefix_shown", "user", "label", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix_shown", "user", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke_selected", "rotate_selected")

    @admin.display(description="token", ordering="prefix")
    def prefix_shown(self, token):
        return f"{token.prefix}…"

    @admin.display(description="kind", ordering="user__is_agent")
    def user_kind(self, token):
        return token.user.kind

    @admin.display(description="active", boolean=True, ordering="revoked_at")
    def active(self, token):
        return token.revoked_at is None

    def has_add_permission(self, request):
        return False  # issue tokens with `manage.py issue_token` (or rotate one here): shown once

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the token stays in the audit trail

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_selected(self, request, queryset):
        count = revoke_tokens(self, request, queryset.select_related("user"))
        self.message_user(request, ngettext("Revoked %d token.", "Revoked %d tokens.", count) % count,
                          messages.SUCCESS if count else messages.INFO)

    @admin.action(description="Rotate selected tokens", permissions=["change"])
    def rotate_selected(self, request, queryset):
        count = rotate_tokens(self, request, queryset.select_related("user"))
        if not count:
            self.message_user(request, "No active token was selected.", messages.INFO)


class ApiTokenInline(admin.TabularInline):
    """A user's tokens, read-only (prefix only, never the hash)."""
    model = ApiToken
    fields = TOKEN_FIELDS
    readonly_fields = TOKEN_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-created_at",)

    @admin.display(description="token")
    def prefix_shown(self, token):
        return f"{token.prefix}…"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return (("human", "Human"), ("agent", "Agent"))

    def queryset(self, request, queryset):
        if self.value() in ("human", "agent"):
            return queryset.filter(is_agent=self.value() == "agent")
        return queryset


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "display_name", "kind", "email", "is_staff", "is_active", "active_tokens",
                    "last_login")
    list_filter = (KindFilter, "is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("username", "display_name", "first_name", "last_name", "email")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Mythline", {"fields": ("display_name", "is_agent", "agent_profile_link")}),
        *DjangoUserAdmin.fieldsets[1:],
    )
    add_fieldsets = (
        (None, {"classes": ("wide",),
                "fields": ("username", "display_name", "usable_password", "password1", "password2")}),
    )
    # Agents are created with `manage.py create_agent` (user + profile + inboxes), never by a flag.
    readonly_fields = ("is_agent", "agent_profile_link", "last_login", "date_joined")
    inlines = (ApiTokenInline,)
    actions = ("revoke_all_tokens", "deactivate_selected")

    def save_model(self, request, obj, form, change):
        """Activation goes through the service: a deactivated user's connections close at once."""
        if change and "is_active" in form.changed_data:
            active, obj.is_active = obj.is_active, not obj.is_active
            super().save_model(request, obj, form, change)
            user_set_active(user=obj, active=active)
            return
        super().save_model(request, obj, form, change)

    @admin.action(description="Deactivate selected users", permissions=["change"])
    def deactivate_selected(self, request, queryset):
        count = 0
        for user in queryset.filter(is_active=True):
            user_set_active(user=user, active=False)
            self.log_change(request, user, "Deactivated.")
            count += 1
        self.message_user(request, ngettext("Deactivated %d user.", "Deactivated %d users.", count) % count)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            n_active_tokens=Count("api_tokens", filter=Q(api_tokens__revoked_at__isnull=True)))

    @admin.display(description="kind", ordering="is_agent")
    def kind(self, user):
        return user.kind

    @admin.display(description="active tokens", ordering="n_active_tokens")
    def active_tokens(self, user):
        return user.n_active_tokens

    @admin.display(description="agent profile")
    def agent_profile_link(self, user):
        profile = getattr(user, "agent_profile", None) if user.pk and user.is_agent else None
        if profile is None:
            return "-"
        url = reverse("admin:agents_agentprofile_change", args=[profile.pk])
        return format_html('<a href="{}">{}</a>', url, "capabilities and status")

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()

    @admin.action(description="Revoke every token of the selected users", permissions=["change"])
    def revoke_all_tokens(self, request, queryset):
        tokens = ApiToken.objects.select_related("user").filter(user__in=queryset, revoked_at__isnull=True)
        count = revoke_tokens(self, request, tokens)
        self.message_user(request, ngettext("Revoked %d token.", "Revoked %d tokens.", count) % count)
