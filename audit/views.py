"""Console pages: recent changes, one object's history, and the rollback actions."""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from audit.authority import ChangeRefused, console_actor, may, section_for_model
from audit.changesets import current_change_set
from audit.errors import RollbackRefused
from audit.selectors import (
    HistoryEntry,
    change_set_records,
    model_for_label,
    object_history,
    recent_changes,
    tracked_models,
)
from audit.services import restore_version, undo_change_set
from gateway_project.errors import console_error_page


def require_POST(view: Any) -> Any:
    """POST only; other methods get a console page with 405 and Allow (Django's is empty)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            response = console_error_page(
                request,
                status=405,
                heading="Use the button",
                message="This action runs from its button on the history page (a POST).",
            )
            response["Allow"] = "POST"
            return response
        return view(request, *args, **kwargs)

    return wrapped


def _may(request: HttpRequest, model: type[Model], action: str) -> bool:
    return may(console_actor(request), action, section_for_model(model))


def may_roll_back(request: HttpRequest, model: type[Model]) -> bool:
    """Rolling back writes the object: it needs add, change and delete on its model."""
    return all(_may(request, model, action) for action in ("add", "change", "delete"))


def render_history(
    request: HttpRequest, *, entries: list[HistoryEntry], title: str, **extra: Any
) -> HttpResponse:
    """The history table: who, when, what changed (old -> new), why, and rollback buttons."""
    rollback_models = {
        model._meta.label_lower for model in tracked_models() if may_roll_back(request, model)
    }
    context = {
        **admin.site.each_context(request),
        "title": title,
        "entries": entries,
        "rollback_models": rollback_models,
        **extra,
    }
    return render(request, "audit/history.html", context)


@staff_member_required
def recent_changes_view(request: HttpRequest) -> HttpResponse:
    """Every recorded change the user may see, newest first; ?change_set= narrows to one."""
    visible = [model for model in tracked_models() if _may(request, model, "view")]
    if not visible:
        raise PermissionDenied
    change_set = request.GET.get("change_set", "")[:32] or None
    entries = recent_changes(models=visible, change_set=change_set)
    title = f"Change set {change_set[:8]}" if change_set else "Recent changes"
    return render_history(request, entries=entries, title=title, change_set=change_set)


def _back(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("next", "")
    own_page = url_has_allowed_host_and_scheme(target, allowed_hosts=None)
    if not own_page or not target.startswith("/admin/"):  # only back to our own console pages
        target = reverse("audit-recent")
    return redirect(target)


@staff_member_required
@require_POST
def restore_view(request: HttpRequest, label: str, history_id: int) -> HttpResponse:
    """Put one object back to a recorded version (a new, recorded change)."""
    model = model_for_label(label)
    if model is None:
        raise Http404("Not a tracked model.")
    if not may_roll_back(request, model):
        raise PermissionDenied
    record = model.history.filter(history_id=history_id).first()  # type: ignore[attr-defined]
    if record is None:
        raise Http404("No such version.")
    try:
        result = restore_version(
            record=record, user=request.user, reason=request.POST.get("reason", "")[:500]
        )
    except (RollbackRefused, ChangeRefused) as refused:
        messages.error(request, str(refused.detail))
    else:
        messages.success(
            request, f"Rolled back {', '.join(result.restored)}; recorded as a change."
        )
    return _back(request)


@staff_member_required
@require_POST
def undo_view(request: HttpRequest, change_set: str) -> HttpResponse:
    """Undo every change of a change set (e.g. a whole config import) in one recorded change."""
    records = change_set_records(change_set=change_set[:32])
    if not records:
        raise Http404("No such change set.")
    for model in {record.instance_type for record in records}:
        if not may_roll_back(request, model):
            raise PermissionDenied
    try:
        result = undo_change_set(
            change_set=change_set, user=request.user, reason=request.POST.get("reason", "")[:500]
        )
    except (RollbackRefused, ChangeRefused) as refused:
        messages.error(request, str(refused.detail))
    else:
        done = [f"restored {name}" for name in result.restored]
        done += [f"deleted {name}" for name in result.deleted]
        messages.success(request, f"Undone: {'; '.join(done) or 'nothing to do'}.")
    return _back(request)


class HistoryAdminMixin(admin.ModelAdmin):
    """A ModelAdmin whose History page shows recorded diffs with rollback buttons."""

    change_form_template = "audit/change_form.html"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Name the change set after the reason the admin typed, if any."""
        change_set = current_change_set()
        reason = request.POST.get("_change_reason", "").strip()[:500]
        if change_set is not None and reason:
            change_set.reason = reason
        super().save_model(request, obj, form, change)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The object's recorded changes, newest first (deleted objects keep their history)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            pk = int(object_id)
        except ValueError:
            raise Http404("No such object.") from None
        entries = object_history(model=self.model, pk=pk)
        if not entries:
            raise Http404("No recorded history for this object.")
        name = entries[0].object_repr
        return render_history(
            request,
            entries=entries,
            title=f"History of {self.model._meta.verbose_name} {name}",
            object_history=True,
        )


urlpatterns = [
    path("", recent_changes_view, name="audit-recent"),
    path("<str:label>/<int:history_id>/restore/", restore_view, name="audit-restore"),
    path("change-sets/<str:change_set>/undo/", undo_view, name="audit-undo"),
]
