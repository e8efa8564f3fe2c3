from django.contrib import admin, messages
from django.utils import timezone

from .models import ApiKey, Space


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Space)
class SpaceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "public_id",
        "is_paused",
        "created_at",
    ]
    list_filter = ["organization", "paused_at"]
    search_fields = ["name", "public_id", "organization__name"]
    readonly_fields = ["public_id", "created_at"]
    # Notification channels (Slack, push) have their own page: notifications' Space channels.
    inlines = [ApiKeyInline]
    actions = ["pause", "resume"]

    @admin.display(boolean=True, description="Paused")
    def is_paused(self, obj: Space) -> bool:
        return obj.is_paused

    @admin.action(description="Pause selected spaces")
    def pause(self, request, queryset) -> None:
        from spaces.services import pause_space

        for space in queryset:
            pause_space(space)
        self.message_user(request, f"Paused {queryset.count()} space(s).", messages.SUCCESS)

    @admin.action(description="Resume selected spaces")
    def resume(self, request, queryset) -> None:
        from spaces.services import resume_space

        for space in queryset:
            resume_space(space)
        self.message_user(request, f"Resumed {queryset.count()} space(s).", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "space",
        "scope_list",
        "is_public",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["is_public", ("revoked_at", admin.EmptyFieldListFilter), "space__organization"]
    search_fields = ["name", "prefix", "space__name", "space__public_id"]
    # The digest is not secret in itself, but there is nothing useful to show of it.
    fields = [
        "space",
        "name",
        "scopes",
        "prefix",
        "is_public",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        # Keys are created in the dashboard or with `manage.py issue_token`, which show them once.
        return False

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)
