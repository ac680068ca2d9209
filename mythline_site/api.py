"""Small helpers shared by the REST views of every app."""
from rest_framework import serializers

from mythline_site.errors import Invalid, one_of


class OneOfField(serializers.ChoiceField):
    """A ChoiceField whose error names the valid values (`must be one of: editor, viewer`), as the
    services' own checks do."""

    def __init__(self, choices, **kwargs):
        super().__init__(choices, **kwargs)
        self.error_messages["invalid_choice"] = one_of(self.choices)


def json_object(serializer_class, request) -> dict:
    """The body, a JSON object naming only the serializer's fields (400 `invalid` otherwise); its
    values are not checked: for a view whose service checks them."""
    if not isinstance(request.data, dict):
        raise Invalid("The body must be a JSON object.")
    unknown = set(request.data) - set(serializer_class().fields)
    if unknown:
        raise Invalid("The body has unknown fields.", details={name: "unknown field" for name in sorted(unknown)})
    return request.data


def validated(serializer_class, request, **kwargs):
    json_object(serializer_class, request)
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
