from django.contrib import admin

from .models import EndpointBreaker, NotificationDelivery, PendingNotification, SpaceChannels


@admin.register(SpaceChannels)
class SpaceChannelsAdmin(admin.ModelAdmin):
    """Each space's Slack and push settings, with their last errors. Changed in the dashboard
    or with `manage.py space_settings`, which check them; here they are only shown."""

    list_display = [
        "space",
        "slack_on",
        "slack_events",
        "slack_disabled_at",
        "push_on",
        "push_names",
        "slack_last_error",
        "push_last_error",
    ]
    list_filter = [("slack_disabled_at", admin.EmptyFieldListFilter)]
    search_fields = ["space__name", "space__public_id", "space__organization__name"]
    list_select_related = ["space__organization"]
    # Webhook URLs, push headers and the push secret grant access elsewhere: never displayed.
    fields = [
        "space",
        "slack_events",
        "slack_disabled_at",
        "slack_last_error",
        "push_names",
        "push_last_error",
    ]
    readonly_fields = fields
    show_full_result_count = False

    @admin.display(boolean=True, description="Slack")
    def slack_on(self, obj: SpaceChannels) -> bool:
        return bool(obj.slack_webhook_url)

    @admin.display(boolean=True, description="Push")
    def push_on(self, obj: SpaceChannels) -> bool:
        return bool(obj.push_url)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # it would silently replace the space's signing secret


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "space",
        "channel",
        "event",
        "target_host",
        "attempt",
        "success",
        "status_code",
        "duration_ms",
    ]
    list_filter = ["channel", "success", "space"]
    search_fields = ["=job__id", "target_host", "event", "error"]
    raw_id_fields = ["job", "space"]
    list_select_related = ["space__organization"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PendingNotification)
class PendingNotificationAdmin(admin.ModelAdmin):
    """The outbox, read-only: rows waiting for Celery or for a retry."""

    list_display = ["id", "created_at", "space", "channel", "events", "attempt", "lease_until"]
    list_filter = ["channel"]
    raw_id_fields = ["space", "job", "job_event"]
    list_select_related = ["space__organization"]
    readonly_fields = ["space", "job", "job_event", "channel", "events", "attempt", "lease_until"]
    exclude = ["token"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(EndpointBreaker)
class EndpointBreakerAdmin(admin.ModelAdmin):
    """Endpoints that stopped answering: their notifications wait until `open_until`.
    Deleting a row lets the next delivery go at once."""

    list_display = ["endpoint", "space", "channel", "failures", "open_until", "last_error"]
    list_filter = ["channel"]
    search_fields = ["endpoint"]
    raw_id_fields = ["space"]
    list_select_related = ["space__organization"]
    readonly_fields = ["space", "channel", "endpoint", "failures", "open_until", "last_error"]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
