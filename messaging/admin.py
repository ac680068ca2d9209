"""Admin for channels, members, and the message audit trail.

Messages, their recipients and read cursors are read-only here: the log is append-only and the
admin can neither add, change nor delete an entry. Channels are created, updated and archived
through the services (never deleted); members are added and removed through them too.
"""
import json
import uuid

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator, smart_split, unescape_string_literal
from django.utils.translation import ngettext

from messaging.models import Channel, Membership, Message, MessageRecipient, ReadCursor
from messaging.services import channel_create, channel_set_archived, channel_update, member_add, member_remove
from mythline_site.admin_base import ReadOnlyAdmin, service_error, validation_error
from mythline_site.errors import MythlineError

CREATABLE_KINDS = [(Channel.Kind.PUBLIC, "public"), (Channel.Kind.PRIVATE, "private"),
                   (Channel.Kind.PRESENCE, "presence")]


def channel_label(channel: Channel) -> str:
    return f"{channel.story.slug} / {channel.name}"


def admin_link(obj, text=None):
    if obj is None:
        return "-"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


# --- Channels and members -------------------------------------------------------------------

class ArchivedFilter(admin.SimpleListFilter):
    title = "archived"
    parameter_name = "archived"

    def lookups(self, request, model_admin):
        return (("yes", "Archived"), ("no", "Open"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(archived_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(archived_at__isnull=True)
        return queryset


def _membership_error(channel: Channel, user, instance=None, deleting=False) -> forms.ValidationError | None:
    """Why this member row cannot be added (or removed), or None. The rules are the services'
    (`member_add`, `member_remove`, tried and rolled back): the admin shows their own message."""
    if deleting:
        stored = Membership.objects.select_related("user").filter(pk=instance.pk).first() if instance else None
        error = service_error(member_remove, channel=channel, user=stored.user) if stored else None
    elif instance is not None and instance.pk:
        # The admin's own rule: a row is added or removed, not pointed at someone else.
        if user is not None and user.pk != instance.user_id:
            return forms.ValidationError("To replace a member, remove the row and add a new one.")
        return None
    else:
        error = service_error(member_add, channel=channel, user=user) if user is not None else None
    return validation_error(error) if error else None


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        refused = []  # removals the service refuses
        for form in self.forms:
            if not getattr(form, "cleaned_data", None):
                continue
            deleting = self.can_delete and self._should_delete_form(form)
            if not deleting and not form.has_changed():
                continue
            problem = _membership_error(self.instance, form.cleaned_data.get("user"),
                                        form.instance if form.instance.pk else None, deleting)
            if problem and deleting:
                # A form marked for deletion is not validated: an error on it would be ignored.
                refused.append(problem)
            elif problem:
                form.add_error(None, problem)
        if refused:
            raise forms.ValidationError(refused)


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipInlineFormSet
    fields = ("user", "role", "joined_at")
    readonly_fields = ("role", "joined_at")
    raw_id_fields = ("user",)
    extra = 0

    def has_add_permission(self, request, obj=None):
        return obj is not None and obj.kind in (Channel.Kind.PRIVATE, Channel.Kind.PRESENCE) \
            and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return False  # a member row is added or removed, not edited


class ChannelAdminForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ("story", "name", "kind", "topic", "idle_archive_seconds", "created_by")
        help_texts = {"created_by": "The channel's owner (it becomes an owner member of a private or "
                                    "presence channel). Usually the story owner."}


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelAdminForm
    list_display = ("name", "story", "kind", "topic_short", "last_seq", "last_message_at", "created_by",
                    "created_at", "archived_at")
    list_filter = ("kind", ArchivedFilter, "story")
    list_select_related = ("story", "created_by")
    search_fields = ("name", "topic", "story__slug")
    raw_id_fields = ("story", "created_by")
    date_hierarchy = "created_at"
    ordering = ("story__slug", "name")
    inlines = (MembershipInline,)
    actions = ("archive_selected", "unarchive_selected")

    @admin.display(description="topic")
    def topic_short(self, channel):
        return Truncator(channel.topic).chars(60)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("story", "name", "kind", "topic", "idle_archive_seconds", "created_by")
        return ("story", "name", "kind", "topic", "idle_archive_seconds", "created_by", "inbox_agent",
                "created_at", "last_seq", "last_message_at", "archived_at", "messages_link")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # Names are in every URL and client; seq and archive state move only through the services.
        return ("story", "name", "kind", "created_by", "inbox_agent", "created_at", "last_seq",
                "last_message_at", "archived_at", "messages_link")

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "kind":
            kwargs["choices"] = CREATABLE_KINDS  # inboxes are created when an agent joins a story
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def get_inlines(self, request, obj):
        if obj is None or obj.kind == Channel.Kind.PUBLIC:
            return ()
        return self.inlines

    @admin.display(description="messages")
    def messages_link(self, channel):
        url = reverse("admin:messaging_message_changelist") + f"?channel={channel.pk}"
        return format_html('<a href="{}">{} messages</a>', url, channel.last_seq)

    def has_delete_permission(self, request, obj=None):
        return False  # channels are archived, never deleted

    def save_model(self, request, obj, form, change):
        if change:
            stored = Channel.objects.select_related("story").get(pk=obj.pk)
            channel_update(channel=stored, by=request.user, topic=obj.topic,
                           idle_archive_seconds=obj.idle_archive_seconds)
            return
        channel = channel_create(story=obj.story, creator=obj.created_by, name=obj.name, kind=obj.kind,
                                 topic=obj.topic, idle_archive_seconds=obj.idle_archive_seconds)
        obj.pk, obj.created_at = channel.pk, channel.created_at
        obj._state.adding, obj._state.db = False, channel._state.db

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)  # fills new/changed/deleted_objects for the change message
        channel = Channel.objects.select_related("story").get(pk=form.instance.pk)
        for membership in formset.deleted_objects:
            member_remove(channel=channel, user=membership.user, by=request.user)
        for membership in formset.new_objects:
            member_add(channel=channel, user=membership.user, by=request.user)

    @admin.action(description="Archive selected channels (read-only from then on)", permissions=["change"])
    def archive_selected(self, request, queryset):
        count = 0
        for channel in queryset.select_related("story").filter(archived_at__isnull=True):
            # Counted and logged only when this call archived it (not when someone else just did).
            if channel_set_archived(channel=channel, by=request.user, archived=True):
                self.log_change(request, channel, "Archived the channel.")
                count += 1
        self.message_user(request, ngettext("Archived %d channel.", "Archived %d channels.", count) % count)

    @admin.action(description="Unarchive selected channels", permissions=["change"])
    def unarchive_selected(self, request, queryset):
        count = 0
        for channel in queryset.select_related("story").filter(archived_at__isnull=False):
            if channel_set_archived(channel=channel, by=request.user, archived=False):
                self.log_change(request, channel, "Unarchived the channel.")
                count += 1
        self.message_user(request,
                          ngettext("Unarchived %d channel.", "Unarchived %d channels.", count) % count)


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ("channel", "user")

    def clean(self):
        data = super().clean()
        channel, user = data.get("channel"), data.get("user")
        if channel is not None and user is not None and not self.instance.pk:
            problem = _membership_error(channel, user)
            if problem:
                raise problem
        return data


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipAdminForm
    list_display = ("channel_name", "story", "kind", "user", "role", "joined_at")
    list_filter = ("role", "channel__kind", "channel__story")
    list_select_related = ("channel__story", "user")
    search_fields = ("channel__name", "channel__story__slug", "user__username")
    raw_id_fields = ("channel", "user")

    @admin.display(description="channel", ordering="channel__name")
    def channel_name(self, membership):
        return membership.channel.name

    @admin.display(description="story", ordering="channel__story__slug")
    def story(self, membership):
        return membership.channel.story.slug

    @admin.display(description="kind", ordering="channel__kind")
    def kind(self, membership):
        return membership.channel.kind

    def get_fields(self, request, obj=None):
        return ("channel", "user") if obj is None else ("channel", "user", "role", "joined_at")

    def has_change_permission(self, request, obj=None):
        return False  # add or remove a membership; there is nothing to edit

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        if allowed and obj is not None:  # only rows `member_remove` would remove (not an agent's own inbox)
            return service_error(member_remove, channel=obj.channel, user=obj.user) is None
        return allowed

    def save_model(self, request, obj, form, change):
        channel = Channel.objects.select_related("story").get(pk=obj.channel_id)
        membership, _ = member_add(channel=channel, user=obj.user, by=request.user)
        obj.pk, obj.role, obj.joined_at = membership.pk, membership.role, membership.joined_at
        obj._state.adding, obj._state.db = False, membership._state.db

    def delete_model(self, request, obj):
        member_remove(channel=obj.channel, user=obj.user, by=request.user)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("channel__story", "user"):
            try:
                member_remove(channel=membership.channel, user=membership.user, by=request.user)
            except MythlineError as error:
                self.message_user(request, f"{channel_label(membership.channel)}: {membership.user.username} "
                                           f"was not removed. {error.message}", messages.ERROR)


# --- Messages (read-only audit trail) --------------------------------------------------------

class ChannelFilter(admin.SimpleListFilter):
    """Channels by story and name (of the chosen story, when one is chosen)."""
    title = "channel"
    parameter_name = "channel"

    def lookups(self, request, model_admin):
        channels = Channel.objects.select_related("story").order_by("story__slug", "name")
        story_id = request.GET.get("story__id__exact")
        if story_id and story_id.isdigit():
            channels = channels.filter(story_id=story_id)
        return [(str(c.pk), channel_label(c)) for c in channels[:500]]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(channel_id=int(value))
        return queryset


class SenderKindFilter(admin.SimpleListFilter):
    title = "sender kind"
    parameter_name = "sender_kind"

    def lookups(self, request, model_admin):
        return (("human", "Human"), ("agent", "Agent"))

    def queryset(self, request, queryset):
        if self.value() in ("human", "agent"):
            return queryset.filter(sender__is_agent=self.value() == "agent")
        return queryset


def payload_preview(payload) -> str:
    if isinstance(payload, dict):
        for key in ("text", "line", "title", "task", "choice"):
            if isinstance(payload.get(key), str):
                text = payload[key]
                if key == "line" and isinstance(payload.get("character"), str):
                    text = f"{payload['character']}: {text}"
                return Truncator(text).chars(80)
    return Truncator(json.dumps(payload, ensure_ascii=False)).chars(80)


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("story", "channel_name", "seq", "sender", "msg_type", "preview", "created_at")
    list_display_links = ("seq", "msg_type")
    list_filter = ("story", ChannelFilter, "msg_type", SenderKindFilter,
                   ("sender", admin.RelatedOnlyFieldListFilter), ("created_at", admin.DateFieldListFilter))
    list_select_related = ("story", "channel", "sender")
    # The search box; the actual search (payload text included) is in get_search_results.
    search_fields = ("sender__username", "msg_type", "correlation_id")
    search_help_text = ("Words in the payload, a sender's username, a msg_type, a correlation id, "
                        "or a message id.")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-seq")
    show_full_result_count = False
    list_per_page = 100
    fields = ("id", "story", "channel_link", "seq", "sender", "sender_kind", "msg_type", "payload_pretty",
              "reply_to_link", "thread_root_link", "replies_list", "relates_to_link", "relations_list",
              "correlation_id", "audience", "recipient_list", "created_at")
    readonly_fields = fields

    @admin.display(description="channel", ordering="channel__name")
    def channel_name(self, message):
        return message.channel.name

    @admin.display(description="payload")
    def preview(self, message):
        return payload_preview(message.payload)

    @admin.display(description="channel")
    def channel_link(self, message):
        return admin_link(message.channel, channel_label(message.channel))

    @admin.display(description="sender kind")
    def sender_kind(self, message):
        return message.sender.kind

    @admin.display(description="payload")
    def payload_pretty(self, message):
        text = json.dumps(message.payload, indent=2, ensure_ascii=False, sort_keys=False)
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)

    @admin.display(description="reply to")
    def reply_to_link(self, message):
        reply_to = message.reply_to
        if reply_to is None:
            return "-"
        return admin_link(reply_to, f"#{reply_to.seq} {reply_to.msg_type} ({reply_to.pk})")

    @admin.display(description="thread root")
    def thread_root_link(self, message):
        root = message.thread_root
        return admin_link(root, f"#{root.seq} {root.msg_type} ({root.pk})") if root else "-"

    @admin.display(description="replies")
    def replies_list(self, message):
        replies = list(message.replies.select_related("sender").order_by("created_at")[:50])
        if not replies:
            return "-"
        return format_html_join(mark_safe("<br>"), "{}", (
            (admin_link(r, f"#{r.seq} {r.msg_type} by {r.sender.username}"),) for r in replies))

    @admin.display(description="relates to")
    def relates_to_link(self, message):
        target = message.relates_to
        if target is None:
            return "-"
        return format_html("{} ({})", admin_link(target, f"#{target.seq} {target.msg_type} ({target.pk})"),
                           message.rel_type)

    @admin.display(description="edits, deletions, reactions")
    def relations_list(self, message):
        """Every version: each edit with its payload, each deletion and reaction, in seq order."""
        rows = list(message.relations.select_related("sender").order_by("seq")[:200])
        if not rows:
            return "-"
        return format_html_join(mark_safe("<br>"), "{} {}", (
            (admin_link(r, f"#{r.seq} {r.msg_type} by {r.sender.username} at {r.created_at:%Y-%m-%d %H:%M:%S}"),
             json.dumps(r.payload, ensure_ascii=False)) for r in rows))

    @admin.display(description="recipients")
    def recipient_list(self, message):
        if message.audience_kind != Message.Audience.USERS:
            return "-"
        return ", ".join(message.recipients.select_related("user").order_by("user__username")
                         .values_list("user__username", flat=True)) or "-"

    def get_search_results(self, request, queryset, search_term):
        """Every word must match the payload (as text), sender, msg_type, correlation id or id.

        The payload is searched cast to text (`Cast(payload, TextField())`), which works on SQLite
        and Postgres alike. It scans, which is fine for an audit screen.
        """
        words = [unescape_string_literal(w) if w[:1] in "\"'" and w[-1:] == w[:1] and len(w) > 1 else w
                 for w in smart_split(search_term.strip())]
        if not words:
            return queryset, False
        queryset = queryset.alias(payload_text=Cast("payload", TextField()))
        for word in words:
            match = (Q(payload_text__icontains=word) | Q(sender__username__icontains=word)
                     | Q(msg_type__iexact=word) | Q(correlation_id__icontains=word))
            # SQLite keeps JSON ASCII-escaped ("café" is stored as "caf\u00e9"); Postgres does not.
            escaped = json.dumps(word)[1:-1]
            if escaped != word:
                match |= Q(payload_text__icontains=escaped)
            try:
                match |= Q(pk=uuid.UUID(word))
            except ValueError:
                pass
            queryset = queryset.filter(match)
        return queryset, False


@admin.register(MessageRecipient)
class MessageRecipientAdmin(ReadOnlyAdmin):
    list_display = ("message_ref", "story", "user")
    list_select_related = ("message__channel__story", "user")
    list_filter = ("message__story",)
    search_fields = ("user__username", "message__channel__name")
    fields = ("message", "user")
    readonly_fields = fields

    @admin.display(description="message")
    def message_ref(self, recipient):
        message = recipient.message
        return f"{message.channel.name} #{message.seq} {message.msg_type}"

    @admin.display(description="story")
    def story(self, recipient):
        return recipient.message.channel.story.slug


@admin.register(ReadCursor)
class ReadCursorAdmin(ReadOnlyAdmin):
    list_display = ("story", "channel_name", "user", "seq", "last_seq", "unread", "updated_at")
    list_select_related = ("channel__story", "user")
    list_filter = ("channel__story", "channel__kind")
    search_fields = ("user__username", "channel__name", "channel__story__slug")
    fields = ("channel", "user", "seq", "updated_at")
    readonly_fields = fields

    @admin.display(description="story", ordering="channel__story__slug")
    def story(self, cursor):
        return cursor.channel.story.slug

    @admin.display(description="channel", ordering="channel__name")
    def channel_name(self, cursor):
        return cursor.channel.name

    @admin.display(description="channel last seq")
    def last_seq(self, cursor):
        return cursor.channel.last_seq

    @admin.display(description="unread")
    def unread(self, cursor):
        return max(cursor.channel.last_seq - cursor.seq, 0)
