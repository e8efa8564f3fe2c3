from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from orgs.models import Membership, Organization
from tests.factories import MembershipFactory, UserFactory


def test_it_signs_up_and_logs_the_new_user_in(client, db):
    response = client.post(
        reverse("dashboard-signup"),
        {
            "username": "dora",
            "email": "dora@example.com",
            "password1": "a-long-pass-phrase-9",
            "password2": "a-long-pass-phrase-9",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard-org-create")
    assert get_user_model().objects.get(username="dora").email == "dora@example.com"
    assert client.get(reverse("dashboard-org-create")).status_code == 200


def _signup(email: str, username: str, password2: str = "a-long-pass-phrase-9"):
    client = Client()
    response = client.post(
        reverse("dashboard-signup"),
        {
            "username": username,
            "email": email,
            "password1": "a-long-pass-phrase-9",
            "password2": password2,
        },
    )
    return client, response


def _page(response, *values: str) -> str:
    html = response.content.decode()
    for value in values:
        html = html.replace(value, "VALUE")
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", html)


def test_signup_does_not_tell_whether_an_email_has_an_account(cast):
    taken = cast.alice.email.upper()
    _, fresh_ok = _signup("fresh@example.com", "fresh1")
    _, taken_ok = _signup(taken, "taken1")
    # Success either way: the same redirect, and a new account logged in.
    assert (fresh_ok.status_code, fresh_ok["Location"]) == (302, reverse("dashboard-org-create"))
    assert (taken_ok.status_code, taken_ok["Location"]) == (302, reverse("dashboard-org-create"))
    assert get_user_model().objects.get(username="taken1").email.lower() == taken.lower()
    # A form with another mistake reads the same whatever the email.
    _, fresh_bad = _signup("fresh2@example.com", "fresh2", password2="mismatch")
    _, taken_bad = _signup(taken, "taken2", password2="mismatch")
    assert fresh_bad.status_code == taken_bad.status_code == 200
    assert _page(fresh_bad, "fresh2@example.com", "fresh2") == _page(taken_bad, taken, "taken2")
    assert "already" not in taken_bad.content.decode()


def test_signup_says_when_a_username_is_taken(cast):
    # Usernames are public handles (shown to teammates, used to invite): no secret to keep.
    _, response = _signup("someone@example.com", "alice")
    assert response.status_code == 200
    assert "A user with that username already exists" in response.content.decode()


def test_login_page_and_logout_work(client, cast):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "alice", "password": "password"})
    assert response.status_code == 302
    assert client.get(reverse("dashboard-home")).status_code == 302
    client.post(reverse("logout"))
    assert client.get(reverse("dashboard-home"))["Location"].startswith(reverse("login"))


def test_a_user_changes_their_password(client, cast):
    client.force_login(cast.alice)
    assert client.get(reverse("password_change")).status_code == 200
    response = client.post(
        reverse("password_change"),
        {
            "old_password": "password",
            "new_password1": "a-brand-new-phrase-7",
            "new_password2": "a-brand-new-phrase-7",
        },
    )
    assert response["Location"] == reverse("password_change_done")
    cast.alice.refresh_from_db()
    assert cast.alice.check_password("a-brand-new-phrase-7")


def test_there_is_no_password_reset_by_email(client, db):
    assert client.get("/accounts/password_reset/").status_code == 404


def test_home_sends_a_user_without_org_to_create_one(client, db):
    client.force_login(UserFactory(username="newbie"))
    assert client.get(reverse("dashboard-home"))["Location"] == reverse("dashboard-org-create")


def test_creating_an_org_makes_the_creator_its_owner(client, db):
    user = UserFactory(username="erin")
    client.force_login(user)
    response = client.post(reverse("dashboard-org-create"), {"name": "Erin Labs"})
    org = Organization.objects.get(name="Erin Labs")
    assert response["Location"] == reverse("dashboard-org", kwargs={"slug": org.slug})
    assert org.role_of(user) == Membership.Role.OWNER


def test_switching_org_is_remembered_in_the_session(client, cast):
    second = Organization.objects.create(name="Zeta")
    MembershipFactory(organization=second, user=cast.alice, role=Membership.Role.MEMBER)
    client.force_login(cast.alice)
    client.post(reverse("dashboard-org-switch", kwargs={"slug": second.slug}))
    assert client.get(reverse("dashboard-home"))["Location"] == reverse(
        "dashboard-org", kwargs={"slug": second.slug}
    )
    client.post(reverse("dashboard-org-switch", kwargs={"slug": cast.org.slug}))
    assert client.get(reverse("dashboard-home"))["Location"] == reverse(
        "dashboard-org", kwargs={"slug": cast.org.slug}
    )


def test_switching_needs_a_post(client, cast):
    client.force_login(cast.alice)
    url = reverse("dashboard-org-switch", kwargs={"slug": cast.org.slug})
    assert client.get(url).status_code == 405


def test_the_org_menu_lists_only_the_users_orgs(client, cast):
    client.force_login(cast.alice)
    html = client.get(reverse("dashboard-org", kwargs={"slug": cast.org.slug})).content.decode()
    assert "Alice Co" in html
    assert "Charlie Co" not in html


class TestMembers:
    def url(self, cast, name="dashboard-members", **kw):
        return reverse(name, kwargs={"slug": cast.org.slug, **kw})

    # Adding someone is an invitation they accept: tests/dashboard/test_invitations.py.
    def test_the_form_invites_instead_of_adding(self, client, cast):
        client.force_login(cast.alice)
        dan = UserFactory(username="dan", email="Dan@Example.com")
        response = client.post(self.url(cast), {"invitee": "dan@example.com", "role": "admin"})
        assert response.status_code == 302
        assert cast.org.role_of(dan) is None
        assert cast.org.invitations.get().email == "dan@example.com"

    def test_inviting_an_existing_member_is_an_error(self, client, cast):
        client.force_login(cast.alice)
        response = client.post(self.url(cast), {"invitee": "bob", "role": "member"})
        assert "already a member" in response.content.decode()
        assert not cast.org.invitations.exists()

    def test_admins_cannot_grant_owner(self, client, cast):
        cast.org.memberships.filter(user=cast.bob).update(role="admin")
        client.force_login(cast.bob)
        response = client.post(self.url(cast), {"invitee": "charlie", "role": "owner"})
        assert response.status_code == 200
        assert cast.org.role_of(cast.charlie) is None
        assert not cast.org.invitations.exists()

    def test_an_owner_changes_a_role(self, client, cast):
        client.force_login(cast.alice)
        bob = cast.org.memberships.get(user=cast.bob)
        client.post(
            self.url(cast, "dashboard-member-role", membership_id=bob.pk), {"role": "admin"}
        )
        bob.refresh_from_db()
        assert bob.role == "admin"

    def test_the_last_owner_cannot_be_demoted_or_removed(self, client, cast):
        client.force_login(cast.alice)
        alice = cast.org.memberships.get(user=cast.alice)
        url = self.url(cast, "dashboard-member-role", membership_id=alice.pk)
        assert client.post(url, {"role": "member"}).status_code == 403
        url = self.url(cast, "dashboard-member-remove", membership_id=alice.pk)
        assert client.post(url).status_code == 403
        alice.refresh_from_db()
        assert alice.role == "owner"

    def test_an_admin_cannot_touch_an_owner(self, client, cast):
        cast.org.memberships.filter(user=cast.bob).update(role="admin")
        client.force_login(cast.bob)
        alice = cast.org.memberships.get(user=cast.alice)
        url = self.url(cast, "dashboard-member-remove", membership_id=alice.pk)
        assert client.post(url).status_code == 403
        assert cast.org.role_of(cast.alice) == "owner"

    def test_an_owner_removes_a_member(self, client, cast):
        client.force_login(cast.alice)
        bob = cast.org.memberships.get(user=cast.bob)
        client.post(self.url(cast, "dashboard-member-remove", membership_id=bob.pk))
        assert cast.org.role_of(cast.bob) is None

    def test_membership_ids_of_another_org_are_404(self, client, cast):
        client.force_login(cast.alice)
        charlie = cast.other_org.memberships.get(user=cast.charlie)
        url = self.url(cast, "dashboard-member-remove", membership_id=charlie.pk)
        assert client.post(url).status_code == 404
