"""Admin pages for the library; saving goes through documents.services (re-chunk, re-index)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from documents.ingest import FileReport, ingest_upload
from documents.inputs import DocumentInput, IngestError
from documents.models import LIBRARY, Chunk, Document
from documents.parsers import ACCEPTED_EXTENSIONS
from documents.parsers.json import JSON_EXAMPLE, JSON_FIELDS
from documents.services import document_create, document_update, documents_delete

# Where `changeform_view` leaves a service's refusal for the form to show on the second pass.
INGEST_ERROR_ATTRIBUTE = "_document_ingest_error"


class ChunkInline(admin.TabularInline):
    model = Chunk
    extra = 0
    can_delete = False
    fields = ("ordinal", "start", "end", "text")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that takes several files; each is judged later by the ingest, not here."""

    widget = MultipleFileInput

    def clean(self, data: object, initial: object = None) -> list:
        files = [item for item in (data if isinstance(data, list | tuple) else [data]) if item]
        if not files:
            raise forms.ValidationError("Choose one or more files.")
        return files


class UploadForm(forms.Form):
    files = MultipleFileField(
        help_text=f"Several at once. Accepted: {', '.join(ACCEPTED_EXTENSIONS)}",
        widget=MultipleFileInput(attrs={"accept": ",".join(ACCEPTED_EXTENSIONS)}),
    )
    collection = forms.CharField(initial=LIBRARY, max_length=100)


def _report_rows(reports: list[FileReport]) -> list[dict]:
    """Return each file's report with a link to every document it created or updated."""
    ids = [pk for report in reports for pk in (*report.document_ids, *report.updated_ids)]
    stored = {pk: (title, collection) for pk, title, collection in
              Document.objects.filter(pk__in=ids).values_list("pk", "title", "collection")}  # fmt: skip
    rows = []
    for report in reports:
        links = [
            {
                "kind": kind,
                "title": stored[pk][0],
                # The site's document page shows the library; other collections open in the admin.
                "url": reverse("search:document", args=[pk])
                if stored[pk][1] == LIBRARY
                else reverse("admin:documents_document_change", args=[pk]),
                "edit": pk,
            }
            for kind, pks in (("created", report.document_ids), ("updated", report.updated_ids))
            for pk in pks
            if pk in stored
        ]
        rows.append({"report": report, "links": links})
    return rows


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "language", "source", "collection", "updated_at")
    list_filter = ("language", "collection", "source", "created_at")
    search_fields = ("title", "external_id", "source")
    readonly_fields = ("content_hash", "created_at", "updated_at")
    fields = ("title", "body", "language", "source", "external_id", "metadata", "collection", *readonly_fields)
    inlines = [ChunkInline]
    change_list_template = "admin/documents/document/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        upload = path(
            "upload/", self.admin_site.admin_view(self.upload_view), name="documents_document_upload"
        )  # admin_view: staff only (else the login page), CSRF-protected, never cached
        return [upload, *super().get_urls()]

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        """Return the upload page; on POST, ingest each file and show one result row per file."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        reports: list[FileReport] = []
        if request.method == "POST":
            form = UploadForm(request.POST, request.FILES)
            if form.is_valid():
                collection = form.cleaned_data["collection"]
                reports = [ingest_upload(uploaded, collection=collection) for uploaded in form.cleaned_data["files"]]
        else:
            form = UploadForm()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload files",
            "form": form,
            "reports": reports,
            "rows": _report_rows(reports),
            "json_fields": JSON_FIELDS,
            "json_example": JSON_EXAMPLE,
            "totals": {
                "created": sum(report.created for report in reports),
                "updated": sum(report.updated for report in reports),
                "unchanged": sum(report.unchanged for report in reports),
                "duplicates": sum(report.duplicates for report in reports),
                "rejected": sum(1 for report in reports if report.status == "rejected"),
            },
        }
        return TemplateResponse(request, "admin/documents/document/upload.html", context)

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except IngestError as error:
            # The service refused the save and the admin's transaction rolled back. Run the same
            # POST again: this time the form itself carries the refusal, so the page shows it.
            setattr(request, INGEST_ERROR_ATTRIBUTE, str(error))
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request: HttpRequest, obj: Document | None = None, change: bool = False, **kwargs: object):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        message = getattr(request, INGEST_ERROR_ATTRIBUTE, None)
        if message is None:
            return form_class

        class RefusedForm(form_class):
            def clean(self) -> dict:
                super().clean()
                raise forms.ValidationError(message)

        return RefusedForm

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        documents_delete(documents=[obj])

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        documents_delete(documents=list(queryset))

    def save_model(self, request: HttpRequest, obj: Document, form: forms.ModelForm, change: bool) -> None:
        if change:
            document_update(document=obj)
            return
        result = document_create(item=DocumentInput.of(obj), collection=obj.collection)
        if not result.created:
            raise IngestError(f"an identical document is already in this collection: #{result.document.pk}")
        obj.pk = result.document.pk
