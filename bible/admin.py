"""Admin for the story bible: staff read, add, change and delete entries; writes go through the
services (the same checks, version bump and `story:` events as the API). Progressions are shown
with their entry and deleted there; they are added through the API or MCP."""
from django import forms
from django.contrib import admin

from bible import services
from bible.models import BibleEntry, BibleProgression
from mythline_site.admin_base import service_error, validation_error


class BibleEntryForm(forms.ModelForm):
    class Meta:
        model = BibleEntry
        fields = ["story", "kind", "name", "aliases", "description", "fields"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        values = {f: data.get(f) for f in ("kind", "name", "aliases", "description", "fields")}
        values["aliases"] = values["aliases"] if values["aliases"] is not None else []
        values["fields"] = values["fields"] if values["fields"] is not None else {}
        values["description"] = values["description"] or ""
        if self.instance.pk is None:
            error = service_error(services.entry_create, story=data["story"], by=self.user, **values)
        else:
            if data.get("story") != self.instance.story:
                raise forms.ValidationError("An entry stays in its story.")
            error = service_error(services.entry_update, entry=self.instance, by=self.user, **values)
        if error is not None:
            raise validation_error(error)
        return data


class ProgressionInline(admin.TabularInline):
    model = BibleProgression
    extra = 0
    fields = ["from_scene", "description", "fields", "note", "created_by", "created_at"]
    readonly_fields = fields
    can_delete = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_staff


@admin.register(BibleEntry)
class BibleEntryAdmin(admin.ModelAdmin):
    form = BibleEntryForm
    list_display = ["name", "kind", "story", "slug", "version", "updated_by", "updated_at"]
    list_filter = ["kind", "story"]
    search_fields = ["search_names", "description", "story__slug", "slug"]
    list_select_related = ["story", "updated_by"]
    readonly_fields = ["slug", "version", "created_by", "updated_by", "created_at", "updated_at"]
    inlines = [ProgressionInline]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.user = request.user
        return form

    def save_model(self, request, obj, form, change):
        values = {f: form.cleaned_data.get(f) for f in ("kind", "name", "aliases", "description", "fields")}
        values["aliases"] = values["aliases"] if values["aliases"] is not None else []
        values["fields"] = values["fields"] if values["fields"] is not None else {}
        values["description"] = values["description"] or ""
        if change:
            stored = BibleEntry.objects.select_related("story").get(pk=obj.pk)
            saved = services.entry_update(entry=stored, by=request.user, **values)
        else:
            saved = services.entry_create(story=form.cleaned_data["story"], by=request.user, **values)
        obj.pk, obj.slug, obj.version = saved.pk, saved.slug, saved.version

    def save_formset(self, request, form, formset, change):
        if formset.model is BibleProgression:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            for progression in formset.deleted_forms:
                stored = BibleProgression.objects.select_related("entry__story").filter(
                    pk=progression.instance.pk).first()
                if stored is not None:
                    services.progression_delete(progression=stored, by=request.user)
                    formset.deleted_objects.append(stored)
            return
        super().save_formset(request, form, formset, change)

    def delete_model(self, request, obj):
        services.entry_delete(entry=BibleEntry.objects.select_related("story").get(pk=obj.pk), by=request.user)

    def delete_queryset(self, request, queryset):
        for entry in queryset.select_related("story"):
            services.entry_delete(entry=entry, by=request.user)
