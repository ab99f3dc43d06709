"""The supervisor's pages: staff accounts and the audit trail (in-process)."""

from __future__ import annotations

from backend.services.audit_query import AuditFilter, search_audit
from backend.services.handoffs import record_handoff
from backend.services.staff import authenticate, get_staff
from tests.console.conftest import Client, MakeStaff, new_password, staff_id_of


async def test_supervisor_creates_and_deactivates_staff(client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """A new clerk can log in; once deactivated, cannot; both acts are audited."""
    boss = await make_staff("supervisor")
    await client.login(boss)
    await client.get("/supervisor/staff")
    password = new_password()
    form = {
        "username": f"clerk{boss.username[-6:]}",
        "display_name": "王五",
        "role": "clerk",
        "password": password,
        "password_again": password,
    }
    made = await client.post("/supervisor/staff", form)
    assert "已创建柜员账号" in made.text
    assert (await authenticate(form["username"], password)) is not None
    again = await client.post("/supervisor/staff", form)
    assert again.status_code == 400 and "该用户名已存在" in again.text
    off = await client.post(f"/supervisor/staff/{form['username']}/deactivate", {})
    assert "已停用" in off.text
    assert (await authenticate(form["username"], password)) is None
    trail = await search_audit(AuditFilter(actor=boss.username))
    assert {e.action for e in trail.events} >= {"staff-create", "staff-deactivate", "login"}


async def test_bad_staff_input_gets_messages(client, make_staff) -> None:  # type: ignore[no-untyped-def]
    """Short passwords, mismatches and bad usernames are refused in Chinese."""
    boss = await make_staff("supervisor")
    await client.login(boss)
    await client.get("/supervisor/staff")
    base = {"username": "ok.name", "display_name": "赵六", "role": "agent"}
    short = await client.post(
        "/supervisor/staff", {**base, "password": "short", "password_again": "short"}
    )
    assert "密码长度" in short.text
    differ = await client.post(
        "/supervisor/staff", {**base, "password": "a" * 12, "password_again": "b" * 12}
    )
    assert "不一致" in differ.text
    bad = await client.post(
        "/supervisor/staff",
        {**base, "username": "1bad name", "password": "a" * 12, "password_again": "a" * 12},
    )
    assert "用户名为" in bad.text
    own = await client.post(f"/supervisor/staff/{boss.username}/deactivate", {})
    assert "不能停用自己的账号" in own.text


async def test_audit_filters_by_card_staff_channel_and_outcome(client, make_staff, issue) -> None:  # type: ignore[no-untyped-def]
    """The audit page narrows to one card, one staff member, a channel and an outcome."""
    boss = await make_staff("supervisor")
    clerk = await make_staff("clerk")
    card = await issue()
    await record_handoff("audit-test-call", "caller-asked", None, None)
    other = Client(client.http)
    await other.login(clerk)
    await other.get("/counter")
    await other.post(
        "/counter/check",
        {
            "action": "unlock",
            "card_number": card.card_number,
            "name": "错名",
            "id_number": card.id_number,
        },
    )
    await client.post("/logout", {})
    await client.login(boss)
    masked = card.card_number[0] + "****" + card.card_number[-4:]
    by_card = await client.get("/supervisor/audit", {"card": card.card_number})
    assert masked in by_card.text and "issue-card" in by_card.text
    assert card.card_number not in by_card.text.replace(f'value="{card.card_number}"', "")
    narrow = await client.get(
        "/supervisor/audit",
        {"card": masked, "actor": clerk.username, "channel": "counter", "outcome": "no-match"},
    )
    assert "共 1 条" in narrow.text and "check-holder" in narrow.text
    since = await client.get("/supervisor/audit", {"since": "2999-01-01T00:00"})
    assert "共 0 条" in since.text


async def test_supervisor_cannot_deactivate_self_by_another_spelling(
    client: Client, make_staff: MakeStaff
) -> None:
    """Upper case or padding in the address still names the supervisor's own account:
    refused, and the account and its session stay active."""
    boss = await make_staff("supervisor")
    await client.login(boss)
    await client.get("/supervisor/staff")
    for spelling in (boss.username.upper(), boss.username.title(), f" {boss.username}"):
        own = await client.post(f"/supervisor/staff/{spelling}/deactivate", {})
        assert own.status_code == 400 and "不能停用自己的账号" in own.text
    found = await get_staff(await staff_id_of(boss.username))
    assert found is not None and found.active
    assert (await client.get("/supervisor/staff")).status_code == 200
