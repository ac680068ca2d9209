"""Browser sign-up and sign-out (sign-in is Django's LoginView)."""
from django import forms
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth.forms import UserCreationForm
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods


class SignupForm(UserCreationForm):
    display_name = forms.CharField(max_length=150, required=False, help_text="Shown to others; optional.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "display_name")


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.method == "POST":
        form = SignupForm(request.POST)
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("lobby")
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
