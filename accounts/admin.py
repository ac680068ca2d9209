"""Admin for users (humans and agents) and API tokens.

Tokens: only the prefix is ever shown, never the stored hash. Revoke and rotate are admin
actions; a rotated token's new raw value is shown once, on the page that answers the action
(`show_new_tokens`): never in a message, which Django may keep in a cookie. Tokens are not
added from the admin (use `manage.py issue_token` or the rotate action) and never deleted:
a revoked token stays as part of the audit trail.

The admin's sign-in goes through the same sign-in limits as the site's (accounts/limits.py).
"""
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import transaction
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.translation import ngettext

from accounts import limits
from accounts.models import ApiToken, User
from accounts.services import token_revoke, token_rotate, user_set_active
from audit import services as audit
from mythline_site.errors import Conflict

admin.site.site_header = "Mythline admin"
admin.site.site_title = "Mythline admin"
admin.site.index_title = "Stories, agents and the message audit trail"


class AdminSignInForm(limits.RefusableLoginFormMixin, AdminAuthenticationForm):
    pass


# The admin's sign-in counts failures with the site's: one budget per account and per address.
# Set on the site before its URLs are built (admin autodiscovery runs before the URLconf loads).
admin.site.login_form = AdminSignInForm
admin.site.login = limits.throttle_sign_in(admin.site.login)


def show_new_tokens(modeladmin, request, issued, *, title="New API tokens"):
    """The page that answers an action which issued tokens: each raw value, shown this once.

    `issued` holds (user, label, raw). The values go into this response only, never into a
    message (Django may keep messages in a cookie), the session or a cache; the page is not cached."""
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "issued": [{"username": user.username, "label": label, "raw": raw} for user, label, raw in issued],
        "back_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
    }
    response = TemplateResponse(request, "admin/accounts/new_tokens.html", context)
    add_never_cache_headers(response)
    return response


TOKEN_FIELDS = ("prefix_shown", "label", "created_at", "last_used_at", "revoked_at")


def revoke_tokens(modeladmin, request, tokens) -> int:
    """Revoke each active token in `tokens`, log it, and return how many were revoked."""
    revoked = 0
    for token in tokens:
        if token.revoked_at is None and token_revoke(token=token, by=request.user):
            modeladmin.log_change(request, token, "Revoked the token.")
            revoked += 1
    return revoked


def rotate_tokens(modeladmin, request, tokens) -> list:
    """Rotate each active token; return (user, label, new raw value) for each, to show once."""
    rotated = []
    for token in tokens:
        if token.revoked_at is not None:
            messages.warning(request, f"Token {token.prefix}… of {token.user.username} is revoked; "
                                      "it was not rotated.")
            continue
        try:
            raw = token_rotate(token=token, by=request.user)
        except Conflict:  # revoked since the page was loaded
            messages.warning(request, f"Token {token.prefix}… of {token.user.username} is revoked; "
                                      "it was not rotated.")
            continue
        modeladmin.log_change(request, token, "Rotated: revoked and replaced by a new token.")
        rotated.append((token.user, token.label, raw))  # shown once by show_new_tokens, never a message
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
        rotated = rotate_tokens(self, request, queryset.select_related("user"))
        if not rotated:
            self.message_user(request, "No active token was selected.", messages.INFO)
            return None
        return show_new_tokens(self, request, rotated, title="Rotated API tokens")


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


def _groups_and_permissions(user) -> dict:
    """The user's groups (names) and own permissions ("app_label.codename"), sorted."""
    if user.pk is None:
        return {"groups": [], "user_permissions": []}
    return {"groups": sorted(user.groups.values_list("name", flat=True)),
            "user_permissions": sorted(f"{app}.{code}" for app, code in user.user_permissions.values_list(
                "content_type__app_label", "codename"))}


def _record_deleted(user, *, by) -> None:
    """The audit row of a user's deletion, written before the row goes: the row's subject is
    emptied with it, so `before` keeps who it was and what they could do."""
    audit.record(audit.USER_DELETED, by=by, subject=user, extra={"user_id": user.pk},
                 before={"username": user.username, "is_agent": user.is_agent, "is_active": user.is_active,
                         "is_staff": user.is_staff, "is_superuser": user.is_superuser,
                         **_groups_and_permissions(user)})


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
        """Activation goes through the service: a deactivated user's connections close at once.
        Staff and superuser status are recorded in the audit log against the stored values, in the
        form's transaction (the admin's change view is atomic), with the staff member as actor."""
        stored = User.objects.filter(pk=obj.pk).values("is_staff", "is_superuser").first() if change else None
        if change and "is_active" in form.changed_data:
            active, obj.is_active = obj.is_active, not obj.is_active
            super().save_model(request, obj, form, change)
            user_set_active(user=obj, active=active, by=request.user)
        else:
            super().save_model(request, obj, form, change)
        for field, event_type in (("is_staff", audit.USER_STAFF_CHANGED),
                                  ("is_superuser", audit.USER_SUPERUSER_CHANGED)):
            if stored is not None and stored[field] != getattr(obj, field):
                audit.record(event_type, by=request.user, subject=obj, before={field: stored[field]},
                             after={field: getattr(obj, field)})

    def save_related(self, request, form, formsets, change):
        """Groups and permissions are saved here (the form's many-to-many): each change of them
        is one audit row, naming what the user held before and holds after."""
        user = form.instance
        before = _groups_and_permissions(user)
        super().save_related(request, form, formsets, change)
        after = _groups_and_permissions(user)
        for key, event_type in (("groups", audit.USER_GROUPS_CHANGED),
                                ("user_permissions", audit.USER_PERMISSIONS_CHANGED)):
            if before[key] != after[key]:
                audit.record(event_type, by=request.user, subject=user, before={key: before[key]},
                             after={key: after[key]},
                             extra={"added": sorted(set(after[key]) - set(before[key])),
                                    "removed": sorted(set(before[key]) - set(after[key]))})

    def delete_model(self, request, obj):
        with transaction.atomic():
            _record_deleted(obj, by=request.user)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for user in queryset:
                _record_deleted(user, by=request.user)
            super().delete_queryset(request, queryset)

    @admin.action(description="Deactivate selected users", permissions=["change"])
    def deactivate_selected(self, request, queryset):
        count = 0
        for user in queryset.filter(is_active=True):
            user_set_active(user=user, active=False, by=request.user)
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
