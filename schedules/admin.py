from django.contrib import admin, messages

from . import services
from .models import Schedule


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "space",
        "cron",
        "timezone",
        "enabled",
        "overlap",
        "next_run_at",
        "last_run_at",
        "last_job_id",
    ]
    list_filter = ["enabled", "overlap", "space__organization"]
    search_fields = ["name", "space__name", "space__public_id"]
    readonly_fields = [
        "next_run_at",
        "last_run_at",
        "last_job_id",
        "last_skipped_at",
        "created_at",
        "updated_at",
    ]
    actions = ["pause", "resume", "trigger"]

    def save_model(self, request, obj: Schedule, form, change) -> None:
        from django.core.exceptions import ValidationError
        from django.utils import timezone

        from . import cron

        for error in (cron.validate_expression(obj.cron), cron.validate_timezone(obj.timezone)):
            if error:
                raise ValidationError(error)
        obj.next_run_at = services.compute_next(obj, timezone.now())
        super().save_model(request, obj, form, change)

    @admin.action(description="Pause selected schedules")
    def pause(self, request, queryset) -> None:
        for schedule in queryset:
            services.pause(schedule)
        self.message_user(request, f"Paused {queryset.count()} schedule(s).", messages.SUCCESS)

    @admin.action(description="Resume selected schedules")
    def resume(self, request, queryset) -> None:
        for schedule in queryset:
            services.resume(schedule)
        self.message_user(request, f"Resumed {queryset.count()} schedule(s).", messages.SUCCESS)

    @admin.action(description="Run selected schedules now")
    def trigger(self, request, queryset) -> None:
        jobs = [services.trigger_now(schedule) for schedule in queryset]
        self.message_user(request, f"Created {len(jobs)} job(s).", messages.SUCCESS)
