"""The browsable API in a real Chromium: a user who is not staff logs in at /api-auth/login/, opens the API
root, follows its link to the posts and sees their own post; then logs out from the page's menu.

pytest-django's live_server (a threaded server over the test database) and Playwright driving the system
Chromium, headless. The database is written before Playwright starts and read after it stops: Playwright's
sync API runs an event loop in this thread, in which Django refuses ORM calls.
"""

import pytest
from django.conf import settings
from playwright.sync_api import expect, sync_playwright

from accounts.models import SecurityEvent
from conftest import TEST_PASSWORD
from posts import services as post_services
from tasks.runner.chromium import chromium_executable, launch_args

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_user_logs_in_opens_the_root_and_sees_their_own_post(live_server, make_user):
    alice = make_user("alice")
    make_user("bob")
    assert not alice.is_staff
    post_services.post_create(author=alice, content="Hello from alice's browser test")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable(),
            headless=True,
            args=launch_args(1280, 900, no_sandbox=settings.CHROMIUM_NO_SANDBOX),
            chromium_sandbox=True,
        )
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/api/v1/")
            page.get_by_role("link", name="Log in").click()  # the browsable API's own link, with ?next=/api/v1/
            page.wait_for_url("**/api-auth/login/**")
            page.fill("#id_username", "alice")
            page.fill("#id_password", TEST_PASSWORD)
            page.click("#submit-id-submit")

            page.wait_for_url(f"{live_server.url}/api/v1/")
            expect(page.locator(".navbar")).to_contain_text("alice")
            page.get_by_role("link", name=f"{live_server.url}/api/v1/posts", exact=True).click()

            page.wait_for_url(f"{live_server.url}/api/v1/posts")
            expect(page.locator(".response-info")).to_contain_text("Hello from alice")
            expect(page.locator(".response-info")).to_contain_text('"author"')

            page.click(".navbar .dropdown-toggle")
            page.get_by_role("link", name="Log out").click()
            page.wait_for_load_state()
            expect(page.locator(".navbar")).to_contain_text("Log in")
            after = page.goto(f"{live_server.url}/api/v1/posts")
            assert after.status in (401, 403)
        finally:
            browser.close()

    assert list(SecurityEvent.objects.filter(user=alice).order_by("pk").values_list("type", flat=True)) == [
        "login",
        "logout",
    ]
