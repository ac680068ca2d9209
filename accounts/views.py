"""Browser sign-in, sign-up and sign-out. Sign-in is Django's LoginView behind the sign-in
limits (accounts/limits.py), as is the admin's (accounts/admin.py), and so is the old password on
the admin's password-change page; sign-ups are limited per client address. Password reset is off
unless MYTHLINE_PASSWORD_RESET=1 (mythline_site/urls.py), then limited per address and e-mail."""
from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminPasswordChangeForm
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, UserCreationForm
from django.contrib.auth.views import LoginView, PasswordChangeView, PasswordResetView
from django.urls import reverse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import limits

# What the sign-up page promises; AUTH_PASSWORD_VALIDATORS enforce exactly this (one validator per
# clause: length, common, numeric, similarity), and tests/accounts/test_passwords.py checks both.
PASSWORD_RULES = "At least 8 characters, not too common, not all digits, not too like your username."


class SignInForm(limits.RefusableLoginFormMixin, AuthenticationForm):
    pass


class SignupForm(limits.RefusableFormMixin, UserCreationForm):
    display_name = forms.CharField(max_length=150, required=False, help_text="Shown to others; optional.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "display_name")

    def __init__(self, *args, refusal=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.refusal = refusal
        self.fields["password1"].help_text = PASSWORD_RULES

    def validate_password_for_user(self, user, password_field_name="password1", **kwargs):
        """The validators' messages go under the password field, next to the rules they explain."""
        super().validate_password_for_user(user, password_field_name=password_field_name, **kwargs)


signin = limits.throttle_sign_in(LoginView.as_view(authentication_form=SignInForm))


class AdminPasswordChange(limits.RefusablePasswordChangeFormMixin, AdminPasswordChangeForm):
    pass


class ThrottledPasswordChangeView(PasswordChangeView):
    form_class = AdminPasswordChange

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


@limits.throttle_password_change
def _admin_password_change(request):
    """AdminSite.password_change with a form that honours the limits."""
    request.current_app = admin.site.name
    return ThrottledPasswordChangeView.as_view(
        success_url=reverse("admin:password_change_done", current_app=admin.site.name),
        extra_context=admin.site.each_context(request))(request)


# Routed at /admin/password_change/ ahead of the admin's own (mythline_site/urls.py), staff only.
admin_password_change = admin.site.admin_view(_admin_password_change, cacheable=True)


class ResetForm(limits.RefusableFormMixin, PasswordResetForm):
    refusal_field = "email"  # Django's page shows no form-wide errors


class ThrottledPasswordResetView(PasswordResetView):
    """Django's password reset request, limited per client address and per e-mail address."""

    form_class = ResetForm

    def post(self, request, *args, **kwargs):
        form = self.get_form()
        form.refusal = limits.password_reset_refusal(request, request.POST.get("email", ""))
        if form.refusal is not None:
            form.is_valid()  # no mail is sent: the refusal is the form's one error
            return limits.refuse(self.form_invalid(form), form.refusal)
        return self.form_valid(form) if form.is_valid() else self.form_invalid(form)


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.method == "POST":
        refusal = limits.signup_refusal(request)
        form = SignupForm(request.POST, refusal=refusal)
        if refusal is not None:
            form.is_valid()  # no user is created: the refusal is the form's one error
            return limits.refuse(render(request, "registration/signup.html", {"form": form}), refusal)
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            response = redirect("lobby")
            limits.issue_device_cookie(response, user.get_username())  # a sign-in like any other
            return response
    else:
        form = SignupForm()
    return render(request, "registration/signup.html", {"form": form})


@require_http_methods(["GET", "POST"])
def signout(request):
    """GET asks to confirm (a link cannot sign you out behind your back); POST signs out."""
    if request.method == "POST":
        logout(request)
        return redirect("login")
    return render(request, "registration/logout_confirm.html")
