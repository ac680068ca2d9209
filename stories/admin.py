"""Admin for stories and participants.

Writes go through the services, as they do for the API: a story added here gets its `general`
and `room` channels; a participant added here joins the room (and an agent gets its inbox).
Removing a participant also removes them from the story's channel member lists, so a former
participant keeps no access to private channels. Invite links are shown (prefix only, never the
token's hash) and revoked here, not made: the owner makes them in the room or through the API.
"""
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import ngettext

from mythline_site.admin_base import ReadOnlyAdmin, service_error, validation_error
from mythline_site.errors import MythlineError
from stories.models import Document, DocumentChange, Invite, Participant, Story
from stories.services import invite_revoke, participant_add, participant_remove, story_create, story_update

ADDABLE_ROLES = [(Participant.Role.EDITOR, "editor"), (Participant.Role.VIEWER, "viewer")]


def remove_participant(participant: Participant, by=None) -> None:
    """`participant_remove` for this row, as stored (a submitted form may have changed its user)."""
    stored = Participant.objects.select_related("story", "user").get(pk=participant.pk)
    participant_remove(story=stored.story, user=stored.user, by=by)


def _add_participant(*, story: Story, user, role) -> None:
    """`participant_add`, also to a story being added with its participants (save_model creates it
    first, with `story_create`)."""
    if story.pk is None:
        if story.owner_id is None or not story.slug:
            return  # the story's own form says what is missing
        try:
            story = story_create(owner=story.owner, slug=story.slug, title=story.title, premise=story.premise,
                                 visibility=story.visibility, requires_approval=story.requires_approval)
        except MythlineError:
            return  # the story's own form says what is wrong with it
    participant_add(story=story, user=user, role=role)


def _check_participant_change(*, story, existing: tuple | None, user, role,
                              deleting=False) -> forms.ValidationError | None:
    """Why this participant edit is not allowed, or None. `existing` is the stored (user_id, role).

    An addition, a role change or a removal is tried with `participant_add` or `participant_remove`
    and rolled back: the admin shows the service's own message (the owner's row, the roles one may
    give)."""
    if existing is not None:
        stored_user_id, stored_role = existing
        if deleting:
            error = service_error(participant_remove, story=story,
                                  user=get_user_model().objects.get(pk=stored_user_id))
            return validation_error(error) if error else None
        # The admin's own rule: a row is added, changed in role or removed, not pointed at someone else.
        if user is not None and user.pk != stored_user_id:
            return forms.ValidationError("To replace a participant, remove the row and add a new one.")
        if stored_role == Participant.Role.OWNER and role == Participant.Role.OWNER:
            return None  # the owner's row, as it is
    if deleting or story is None or user is None or role is None:
        return None  # nothing to add, or a field error the form shows already
    error = service_error(_add_participant, story=story, user=user, role=role)
    return validation_error(error) if error else None


class ParticipantInlineFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        refused = []  # removals refused
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data:
                continue
            deleting = self.can_delete and self._should_delete_form(form)
            if not deleting and not form.has_changed():
                continue
            # form.instance already holds the submitted values; the stored ones are in `initial`.
            existing = (form.initial.get("user"), form.initial.get("role")) if form.instance.pk else None
            data = form.cleaned_data
            problem = _check_participant_change(story=self.instance, existing=existing, user=data.get("user"),
                                                role=data.get("role"), deleting=deleting)
            if problem and deleting:
                # A form marked for deletion is not validated: an error on it would be ignored.
                refused.append(problem)
            elif problem:
                form.add_error(None, problem)
        if refused:
            raise forms.ValidationError(refused)


class ParticipantInline(admin.TabularInline):
    model = Participant
    formset = ParticipantInlineFormSet
    fields = ("user", "role", "joined_at")
    readonly_fields = ("joined_at",)
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Story)
class StoryAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "visibility", "owner", "n_participants", "n_channels", "created_at",
                    "updated_at")
    list_filter = ("visibility", "requires_approval", "created_at")
    list_select_related = ("owner",)
    search_fields = ("slug", "title", "premise", "owner__username")
    date_hierarchy = "created_at"
    raw_id_fields = ("owner",)
    inlines = (ParticipantInline,)

    def view_on_site(self, story):
        return f"/stories/{story.slug}/"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            participant_count=Count("participants", distinct=True),
            channel_count=Count("channels", distinct=True))

    @admin.display(description="participants", ordering="participant_count")
    def n_participants(self, story):
        return story.participant_count

    @admin.display(description="channels", ordering="channel_count")
    def n_channels(self, story):
        return story.channel_count

    def get_fields(self, request, obj=None):
        return ("slug", "title", "premise", "visibility", "requires_approval", "owner", "created_at",
                "updated_at") if obj else ("slug", "title", "premise", "visibility", "requires_approval", "owner")

    def get_readonly_fields(self, request, obj=None):
        # The slug is in every URL and client; ownership is not transferred from here.
        return ("slug", "owner", "created_at", "updated_at") if obj else ()

    def has_delete_permission(self, request, obj=None):
        return False  # stories keep their messages: the audit trail is never deleted

    def save_model(self, request, obj, form, change):
        if change:
            stored = Story.objects.get(pk=obj.pk)
            story_update(story=stored, title=obj.title, premise=obj.premise, visibility=obj.visibility,
                         requires_approval=obj.requires_approval, by=request.user)
            obj.updated_at = stored.updated_at
            return
        story = story_create(owner=obj.owner, slug=obj.slug, title=obj.title, premise=obj.premise,
                             visibility=obj.visibility, requires_approval=obj.requires_approval, by=request.user)
        obj.pk, obj.created_at, obj.updated_at = story.pk, story.created_at, story.updated_at
        obj._state.adding, obj._state.db = False, story._state.db

    def save_formset(self, request, form, formset, change):
        if formset.model is not Participant:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)  # fills new/changed/deleted_objects for the change message
        for participant in formset.deleted_objects:
            remove_participant(participant, by=request.user)
        for participant in [*formset.new_objects, *(p for p, _ in formset.changed_objects)]:
            participant_add(story=form.instance, user=participant.user, role=participant.role, by=request.user)


class ParticipantAdminForm(forms.ModelForm):
    class Meta:
        model = Participant
        fields = ("story", "user", "role")

    def clean(self):
        data = super().clean()
        stored = Participant.objects.filter(pk=self.instance.pk).values_list("user_id", "role").first() \
            if self.instance.pk else None
        # On the change page the story and the user are shown, not submitted: the row's own.
        story = data.get("story") or (self.instance.story if self.instance.pk else None)
        user = data.get("user") or (self.instance.user if self.instance.pk else None)
        problem = _check_participant_change(story=story, existing=stored, user=user, role=data.get("role"))
        if problem:
            raise problem
        return data


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    form = ParticipantAdminForm
    list_display = ("story", "user", "kind", "role", "joined_at")
    list_filter = ("role", "user__is_agent", "story")
    list_select_related = ("story", "user")
    search_fields = ("story__slug", "user__username", "user__display_name")
    raw_id_fields = ("story", "user")
    readonly_fields = ("joined_at",)

    @admin.display(description="kind", ordering="user__is_agent")
    def kind(self, participant):
        return participant.user.kind

    def get_readonly_fields(self, request, obj=None):
        return ("story", "user", "joined_at") if obj else ("joined_at",)

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role":
            kwargs["choices"] = ADDABLE_ROLES
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def get_fields(self, request, obj=None):
        return ("story", "user", "role", "joined_at")

    def has_change_permission(self, request, obj=None):
        # The owner row is read-only (it is shown, not edited).
        if obj is not None and obj.role == Participant.Role.OWNER:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        if allowed and obj is not None:  # only rows `participant_remove` would remove (not the owner's)
            return service_error(participant_remove, story=obj.story, user=obj.user) is None
        return allowed

    def save_model(self, request, obj, form, change):
        story = obj.story if not change else Story.objects.get(pk=obj.story_id)
        participant, _ = participant_add(story=story, user=obj.user, role=obj.role, by=request.user)
        obj.pk, obj.joined_at = participant.pk, participant.joined_at
        obj._state.adding, obj._state.db = False, participant._state.db

    def delete_model(self, request, obj):
        remove_participant(obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for participant in queryset.select_related("story", "user"):
            try:
                participant_remove(story=participant.story, user=participant.user, by=request.user)
            except MythlineError as error:

                self.message_user(request, f"{participant.story.slug}: {participant.user.username} was not "
                                           f"removed. {error.message}", messages.ERROR)


class DocumentChangeInline(admin.TabularInline):
    model = DocumentChange
    fields = ("revision", "author", "via", "client_id", "created_at", "changes")
    readonly_fields = fields
    extra = 0
    ordering = ("-revision",)
    max_num = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = ("name", "story", "title", "revision", "created_by", "updated_at", "forked_from")
    list_filter = ("story",)
    search_fields = ("name", "title", "story__slug")
    list_select_related = ("story", "created_by", "forked_from")
    readonly_fields = ("story", "name", "title", "revision", "created_by", "created_at", "updated_at",
                       "forked_from", "forked_at_revision", "text")
    inlines = [DocumentChangeInline]


@admin.register(DocumentChange)
class DocumentChangeAdmin(ReadOnlyAdmin):
    list_display = ("document", "revision", "author", "via", "created_at")
    list_filter = ("via", "document__story", ("created_at", admin.DateFieldListFilter))
    search_fields = ("document__name", "author__username", "client_id")
    list_select_related = ("document__story", "author")
    date_hierarchy = "created_at"
    readonly_fields = ("document", "revision", "author", "via", "client_id", "created_at", "changes")


class InviteStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return ((Invite.State.LIVE, "Live"), (Invite.State.EXPIRED, "Expired"),
                (Invite.State.REVOKED, "Revoked"))

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == Invite.State.LIVE:
            return queryset.filter(revoked_at__isnull=True, expires_at__gt=now)
        if self.value() == Invite.State.EXPIRED:
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == Invite.State.REVOKED:
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    """Invite links, read-only; the one change is revoking them (an action, through the service)."""
    list_display = ("prefix_shown", "story", "role", "state", "uses", "expires_at", "created_by",
                    "created_at", "last_used_at")
    list_filter = (InviteStateFilter, "role", "story")
    list_select_related = ("story", "created_by")
    search_fields = ("prefix", "story__slug", "created_by__username")
    search_help_text = "Link prefix, story slug or who made it."
    date_hierarchy = "created_at"
    fields = ("prefix_shown", "story", "role", "state", "uses", "created_by", "created_at", "expires_at",
              "revoked_at", "last_used_at")
    readonly_fields = fields
    actions = ("revoke_selected",)

    @admin.display(description="link", ordering="prefix")
    def prefix_shown(self, invite):
        return f"{invite.prefix}…"

    @admin.display(description="state")
    def state(self, invite):
        return invite.state

    def has_add_permission(self, request):
        return False  # links are made by the story's owner (room or API): the token is shown to them once

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the link stays as a record of who joined how

    @admin.action(description="Revoke selected invites", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for invite in queryset.select_related("story", "created_by"):
            if invite.revoked_at is None:
                invite_revoke(invite=invite, by=request.user)
                self.log_change(request, invite, "Revoked the invite link.")
                revoked += 1
        text = ngettext("Revoked %d invite link.", "Revoked %d invite links.", revoked) % revoked
        self.message_user(request, text, messages.SUCCESS if revoked else messages.INFO)
