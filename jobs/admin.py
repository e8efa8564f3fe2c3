from django.contrib import admin, messages

from .models import Job, JobEvent, JobLog


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    fields = ["created_at", "type", "status", "attempt_number", "seq", "data"]
    readonly_fields = fields
    can_delete = False
    ordering = ["id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "space",
        "status",
        "priority",
        "attempt_number",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", "space__organization", "space"]
    search_fields = ["=id", "name", "idempotency_key"]
    list_select_related = ["space", "space__organization"]
    show_full_result_count = False  # no COUNT(*) over millions of rows on every page
    readonly_fields = [f.name for f in Job._meta.fields if f.name != "callback_headers"]
    # Callback headers usually carry credentials for the receiver: never displayed.
    exclude = ["callback_headers"]
    inlines = [JobEventInline]
    actions = ["kill_jobs", "retry_jobs"]

    def has_add_permission(self, request) -> bool:
        return False  # jobs are created through the API, which validates them

    @admin.action(description="Kill selected jobs")
    def kill_jobs(self, request, queryset) -> None:
        from .services import bulk_kill

        done = bulk_kill(queryset, reason=f"killed by {request.user} in the admin")
        self.message_user(request, f"Killed {done} job(s).", messages.SUCCESS)

    @admin.action(description="Retry selected dead or killed jobs")
    def retry_jobs(self, request, queryset) -> None:
        from .services import bulk_retry

        done = bulk_retry(queryset)
        self.message_user(request, f"Re-queued {done} job(s).", messages.SUCCESS)


@admin.register(JobEvent)
class JobEventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "job", "status", "attempt_number", "seq", "created_at"]
    list_filter = ["type", "status"]
    search_fields = ["=job__id", "type"]
    raw_id_fields = ["job", "space"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(JobLog)
class JobLogAdmin(admin.ModelAdmin):
    list_display = ["job", "seq", "level", "message", "timestamp"]
    list_filter = ["level"]
    search_fields = ["=job__id", "message"]
    raw_id_fields = ["job"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
