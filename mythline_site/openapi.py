"""How /api/schema describes the bearer token (accounts/authentication.py): as an HTTP bearer
security scheme. Without it drf-spectacular warns on every view, and `check --deploy` with it."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "`Authorization: Bearer myth_...`: a token from `manage.py issue_token`."}
