from django.contrib import admin

from .models import Invitation, Membership, Organization


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "member_count", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    @admin.display(description="Members")
    def member_count(self, obj: Organization) -> int:
        return obj.memberships.count()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations are answered by their invitee in the dashboard: the admin shows them and can
    correct the role or expiry, but status changes belong to accept, decline and revoke."""

    list_display = ["invitee", "organization", "role", "status", "invited_by", "expires_at"]
    list_filter = ["status", "role"]
    search_fields = ["invitee", "email", "user__username", "organization__name"]
    autocomplete_fields = ["organization", "user", "invited_by"]
    readonly_fields = ["token", "status", "created_at", "answered_at"]
    list_select_related = ["organization", "invited_by"]
