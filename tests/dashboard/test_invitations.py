"""Organization membership by invitation: nothing changes until the invitee accepts, only the
invitee can answer, and no answer tells whether an account exists."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from orgs.models import Invitation, Membership
from tests.factories import UserFactory

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def members_url(org) -> str:
    return reverse("dashboard-members", kwargs={"slug": org.slug})


def accept_url(invitation) -> str:
    return reverse("dashboard-invitation-accept", kwargs={"token": invitation.token})


def decline_url(invitation) -> str:
    return reverse("dashboard-invitation-decline", kwargs={"token": invitation.token})


def invite(client, org, invitee: str, role: str = "member", **kw):
    return client.post(members_url(org), {"invitee": invitee, "role": role}, **kw)


@pytest.fixture
def dan(db):
    return UserFactory(username="dan", email="Dan.Private@Example.com")


@pytest.fixture
def alice(client, cast):
    client.force_login(cast.alice)
    return client


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


class TestInviting:
    def test_an_invitation_by_username_makes_no_membership(self, alice, cast, dan):
        response = invite(alice, cast.org, "dan", role="admin")
        assert response.status_code == 302
        assert response["Location"] == members_url(cast.org)
        assert cast.org.role_of(dan) is None
        invitation = Invitation.objects.get(organization=cast.org)
        assert (invitation.user, invitation.email, invitation.role) == (dan, "", "admin")
        assert invitation.status == Invitation.Status.PENDING
        assert invitation.invited_by == cast.alice
        assert len(invitation.token) >= 40

    def test_an_invitation_by_email_is_stored_lower_case_and_bound_to_no_account(
        self, alice, cast, dan
    ):
        invite(alice, cast.org, "DAN.private@example.COM")
        invitation = Invitation.objects.get(organization=cast.org)
        assert invitation.email == "dan.private@example.com"
        assert invitation.user is None
        assert cast.org.role_of(dan) is None

    def test_it_expires_after_seven_days(self, alice, cast, dan):
        with time_machine.travel(T0, tick=False):
            invite(alice, cast.org, "dan")
        assert Invitation.objects.get().expires_at == T0 + timedelta(days=7)

    def test_members_cannot_invite(self, client, cast, dan):
        client.force_login(cast.bob)
        assert invite(client, cast.org, "dan").status_code == 403
        assert not Invitation.objects.exists()

    def test_admins_cannot_invite_as_owner(self, client, cast, dan):
        cast.org.memberships.filter(user=cast.bob).update(role="admin")
        client.force_login(cast.bob)
        response = invite(client, cast.org, "dan", role="owner")
        assert response.status_code == 200
        assert "role" in response.context["form"].errors
        assert not Invitation.objects.exists()

    def test_inviting_a_member_or_someone_already_invited_is_refused(self, alice, cast, dan):
        response = invite(alice, cast.org, "bob")
        assert "bob is already a member" in response.content.decode()
        response = invite(alice, cast.org, cast.bob.email.upper())
        assert "is already a member" in response.content.decode()
        invite(alice, cast.org, "dan")
        response = invite(alice, cast.org, "dan")
        assert "already has a pending invitation" in response.content.decode()
        assert Invitation.objects.count() == 1

    def test_an_expired_invitation_does_not_block_a_new_one(self, alice, cast, dan):
        with time_machine.travel(T0, tick=False):
            invite(alice, cast.org, "dan")
        with time_machine.travel(T0 + timedelta(days=8), tick=False):
            assert invite(alice, cast.org, "dan").status_code == 302
        assert Invitation.objects.count() == 2


def _normalized(html: str, target: str) -> str:
    html = html.replace(target, "TARGET")
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", html)
    return re.sub(r"/invitations/\d+/revoke/", "/invitations/ID/revoke/", html)


class TestNoAccountEnumeration:
    # Names that occur nowhere else in the page, so that they can be blanked out to compare.
    @pytest.mark.parametrize(
        ("existing", "missing"),
        [("qx7-real", "qx7-none"), ("qx7-real@example.com", "qx7-none@example.com")],
    )
    def test_an_unknown_username_or_email_gets_the_same_answer(
        self, alice, cast, existing, missing
    ):
        UserFactory(username="qx7-real", email="qx7-real@example.com")
        answers = []
        for target in (existing, missing):
            with time_machine.travel(T0, tick=False):
                direct = invite(alice, cast.org, target)
                page = alice.get(direct["Location"])
            answers.append(
                (
                    direct.status_code,
                    direct["Location"],
                    page.status_code,
                    _normalized(page.content.decode(), target),
                )
            )
            Invitation.objects.all().delete()
        assert answers[0] == answers[1]
        # ...and the answer is a success, shown with the invitation pending.
        assert answers[0][2] == 200
        assert "Invitation sent to TARGET" in answers[0][3]
        assert "<strong>TARGET</strong>" in answers[0][3]

    def test_the_members_page_never_shows_an_invitees_email(self, alice, cast, dan):
        invite(alice, cast.org, "dan")
        html = alice.get(members_url(cast.org)).content.decode()
        assert "<strong>dan</strong>" in html
        assert "dan.private" not in html.lower()
        as_user(dan).post(accept_url(Invitation.objects.get()))
        # Once dan has accepted, the organization sees his email like any member's.
        assert "Dan.Private@Example.com" in alice.get(members_url(cast.org)).content.decode()

    def test_plain_members_do_not_see_pending_invitations(self, alice, cast, dan):
        invite(alice, cast.org, "dan")
        html = as_user(cast.bob).get(members_url(cast.org)).content.decode()
        assert "Pending invitations" not in html
        assert "<strong>dan</strong>" not in html


class TestAnswering:
    def test_the_invitee_sees_the_invitation_and_accepts_it(self, alice, cast, dan):
        invite(alice, cast.org, "dan", role="admin")
        invitation = Invitation.objects.get()
        client = as_user(dan)
        home = client.get(reverse("dashboard-org-create")).content.decode()
        assert 'class="nav-count">1<' in home
        page = client.get(reverse("dashboard-invitations")).content.decode()
        assert "Alice Co" in page and accept_url(invitation) in page
        response = client.post(accept_url(invitation))
        assert response["Location"] == reverse("dashboard-org", kwargs={"slug": cast.org.slug})
        assert cast.org.role_of(dan) == Membership.Role.ADMIN
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.ACCEPTED
        assert invitation.answered_at is not None
        assert client.get(reverse("dashboard-home"))["Location"] == response["Location"]

    def test_a_user_with_no_org_lands_on_their_invitations(self, alice, cast, dan):
        client = as_user(dan)
        assert client.get(reverse("dashboard-home"))["Location"] == reverse("dashboard-org-create")
        invite(alice, cast.org, "dan")
        assert client.get(reverse("dashboard-home"))["Location"] == reverse("dashboard-invitations")

    def test_an_email_invitation_is_accepted_by_the_account_with_that_email(self, alice, cast, dan):
        invite(alice, cast.org, "dan.private@example.com")
        invitation = Invitation.objects.get()
        as_user(dan).post(accept_url(invitation))
        assert cast.org.role_of(dan) == "member"
        invitation.refresh_from_db()
        assert invitation.user == dan

    def test_an_email_with_no_account_is_accepted_after_signing_up(self, alice, cast):
        invite(alice, cast.org, "erin@example.com", role="admin")
        invitation = Invitation.objects.get()
        newcomer = Client()
        response = newcomer.post(
            reverse("dashboard-signup"),
            {
                "username": "erin",
                "email": "Erin@Example.com",
                "password1": "a-long-pass-phrase-9",
                "password2": "a-long-pass-phrase-9",
            },
        )
        assert response.status_code == 302
        assert "See invitations" in newcomer.get(response["Location"]).content.decode()
        newcomer.post(accept_url(invitation))
        assert cast.org.memberships.get(user__username="erin").role == "admin"

    def test_declining_makes_no_membership_and_closes_the_invitation(self, alice, cast, dan):
        invite(alice, cast.org, "dan")
        invitation = Invitation.objects.get()
        client = as_user(dan)
        response = client.post(decline_url(invitation))
        assert response["Location"] == reverse("dashboard-invitations")
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.DECLINED
        assert cast.org.role_of(dan) is None
        assert (
            accept_url(invitation)
            not in client.get(reverse("dashboard-invitations")).content.decode()
        )
        # Declined is final: a later accept is refused and writes nothing.
        response = client.post(accept_url(invitation), follow=True)
        assert "already declined" in response.content.decode()
        assert cast.org.role_of(dan) is None
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.DECLINED

    def test_an_invitation_is_used_once(self, alice, cast, dan):
        invite(alice, cast.org, "dan")
        invitation = Invitation.objects.get()
        client = as_user(dan)
        client.post(accept_url(invitation))
        cast.org.memberships.filter(user=dan).delete()  # removed again by the org
        response = client.post(accept_url(invitation), follow=True)
        assert "already accepted" in response.content.decode()
        assert cast.org.role_of(dan) is None

    def test_an_expired_invitation_is_refused(self, alice, cast, dan):
        with time_machine.travel(T0, tick=False):
            invite(alice, cast.org, "dan")
        invitation = Invitation.objects.get()
        client = as_user(dan)
        with time_machine.travel(T0 + timedelta(days=7, seconds=1), tick=False):
            page = client.get(reverse("dashboard-invitations")).content.decode()
            assert accept_url(invitation) not in page
            response = client.post(accept_url(invitation), follow=True)
            assert "has expired" in response.content.decode()
            response = client.post(decline_url(invitation), follow=True)
            assert "has expired" in response.content.decode()
        assert cast.org.role_of(dan) is None
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.PENDING
        assert invitation.answered_at is None

    def test_just_before_expiry_it_still_works(self, alice, cast, dan):
        with time_machine.travel(T0, tick=False):
            invite(alice, cast.org, "dan")
        with time_machine.travel(T0 + timedelta(days=7, seconds=-1), tick=False):
            as_user(dan).post(accept_url(Invitation.objects.get()))
        assert cast.org.role_of(dan) == "member"

    def test_accept_and_decline_need_a_post_with_a_csrf_token(self, alice, cast, dan):
        invite(alice, cast.org, "dan")
        invitation = Invitation.objects.get()
        client = as_user(dan)
        assert client.get(accept_url(invitation)).status_code == 405
        assert client.get(decline_url(invitation)).status_code == 405
        strict = Client(enforce_csrf_checks=True)
        strict.force_login(dan)
        assert strict.post(accept_url(invitation)).status_code == 403
        assert strict.post(decline_url(invitation)).status_code == 403
        assert cast.org.role_of(dan) is None
        assert Invitation.objects.get().status == Invitation.Status.PENDING

    def test_anonymous_visitors_are_sent_to_log_in(self, alice, cast, dan):
        invite(alice, cast.org, "dan")
        invitation = Invitation.objects.get()
        anonymous = Client()
        for url in (reverse("dashboard-invitations"),):
            assert anonymous.get(url)["Location"].startswith(reverse("login"))
        for url in (accept_url(invitation), decline_url(invitation)):
            assert anonymous.post(url)["Location"].startswith(reverse("login"))
        assert Invitation.objects.get().status == Invitation.Status.PENDING


class TestSomeoneElsesInvitation:
    @pytest.fixture
    def invitation(self, alice, cast, dan) -> Invitation:
        invite(alice, cast.org, "dan", role="admin")
        return Invitation.objects.get()

    def _assert_untouched(self, cast, invitation, *users) -> None:
        for user in users:
            assert cast.org.role_of(user) is None
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.PENDING
        assert invitation.answered_at is None

    def test_a_third_user_gets_404_and_changes_nothing(self, cast, dan, invitation):
        eve = UserFactory(username="eve")
        client = as_user(eve)
        assert client.post(accept_url(invitation)).status_code == 404
        assert client.post(decline_url(invitation)).status_code == 404
        assert "Alice Co" not in client.get(reverse("dashboard-invitations")).content.decode()
        self._assert_untouched(cast, invitation, eve, dan)

    def test_the_inviter_cannot_answer_for_the_invitee(self, alice, cast, dan, invitation):
        # charlie: an owner elsewhere; alice: already in, but not the invitee either.
        for user in (cast.charlie, cast.alice):
            assert as_user(user).post(accept_url(invitation)).status_code == 404
        self._assert_untouched(cast, invitation, cast.charlie, dan)

    def test_an_account_with_the_same_email_as_a_username_invitee_is_not_it(
        self, cast, dan, invitation
    ):
        # dan was invited by username: the invitation is his account's, not his address's.
        twin = UserFactory(username="twin", email=dan.email)
        assert as_user(twin).post(accept_url(invitation)).status_code == 404
        self._assert_untouched(cast, invitation, twin, dan)

    def test_an_email_invitation_answered_by_one_account_is_gone_for_the_others(
        self, alice, cast, dan
    ):
        invite(alice, cast.org, "shared@example.com")
        invitation = Invitation.objects.get(email="shared@example.com")
        first = UserFactory(username="first", email="shared@example.com")
        second = UserFactory(username="second", email="SHARED@example.com")
        as_user(first).post(accept_url(invitation))
        assert as_user(second).post(accept_url(invitation)).status_code == 404
        assert cast.org.role_of(first) == "member"
        assert cast.org.role_of(second) is None

    def test_a_made_up_token_is_404(self, dan, invitation):
        url = reverse("dashboard-invitation-accept", kwargs={"token": "x" * 43})
        assert as_user(dan).post(url).status_code == 404


class TestRevoking:
    def test_a_manager_revokes_and_the_invitee_can_no_longer_accept(self, alice, cast, dan):
        invite(alice, cast.org, "dan")
        invitation = Invitation.objects.get()
        url = reverse(
            "dashboard-invitation-revoke",
            kwargs={"slug": cast.org.slug, "invitation_id": invitation.pk},
        )
        assert alice.get(url).status_code == 405
        response = alice.post(url)
        assert response["Location"] == members_url(cast.org)
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.REVOKED
        assert "<strong>dan</strong>" not in alice.get(members_url(cast.org)).content.decode()
        response = as_user(dan).post(accept_url(invitation), follow=True)
        assert "already revoked" in response.content.decode()
        assert cast.org.role_of(dan) is None

    def test_members_cannot_revoke_and_admins_cannot_revoke_an_owner_invitation(
        self, alice, cast, dan
    ):
        invite(alice, cast.org, "dan", role="owner")
        invitation = Invitation.objects.get()
        url = reverse(
            "dashboard-invitation-revoke",
            kwargs={"slug": cast.org.slug, "invitation_id": invitation.pk},
        )
        assert as_user(cast.bob).post(url).status_code == 403
        cast.org.memberships.filter(user=cast.bob).update(role="admin")
        assert as_user(cast.bob).post(url).status_code == 403
        assert Invitation.objects.get().status == Invitation.Status.PENDING

    def test_an_invitation_of_another_org_is_404(self, client, cast, dan):
        client.force_login(cast.charlie)
        invite(client, cast.other_org, "dan")
        invitation = Invitation.objects.get()
        url = reverse(
            "dashboard-invitation-revoke",
            kwargs={"slug": cast.org.slug, "invitation_id": invitation.pk},
        )
        assert as_user(cast.alice).post(url).status_code == 404
        assert Invitation.objects.get().status == Invitation.Status.PENDING
