"""Shared admin pieces."""
from django import forms
from django.contrib import admin
from django.db import transaction

from mythline_site.errors import MythlineError


class _DryRun(Exception):
    """Ends a dry run: rolls its savepoint back."""


def service_error(write, /, **kwargs) -> MythlineError | None:
    """What a service would refuse: run `write(**kwargs)` and undo it; its MythlineError, or None.

    For a form's clean(): the admin checks a change with the service's own rules (and shows its
    own message), then save_model() calls the service for real. The dry run is a savepoint that
    is always rolled back: nothing is written, and no event goes out (services publish on commit;
    a rolled-back savepoint drops those callbacks).
    """
    try:
        with transaction.atomic():
            write(**kwargs)
            raise _DryRun
    except _DryRun:
        return None
    except MythlineError as error:
        return error


def validation_error(error: MythlineError) -> forms.ValidationError:
    """A service's refusal as a form error, in the service's words."""
    return forms.ValidationError(error.message, code=error.code)


class ReadOnlyAdmin(admin.ModelAdmin):
    """The audit trail: shown, never added, changed or deleted here, whoever asks."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
