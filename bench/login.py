"""Scripted browser logins through an auth proxy and the test OpenID provider.

The provider (tests/fixtures/idp.mjs) runs on 127.0.0.2 and the proxies on
127.0.0.1, so a cookie jar keeps their cookies apart. A `Browser` signs in
once at the provider; later logins through any proxy then skip the login
and consent forms, because the provider session and the grant already exist.
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

# Each HTTP request of a login gives up after this many seconds.
REQUEST_TIMEOUT_S = 10.0

_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"', re.IGNORECASE)


class LoginError(RuntimeError):
    """A login did not end at the proxied page with a session cookie."""


class Browser:
    """A cookie jar and an HTTP client that follows redirects like a browser."""

    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def fetch(self, url: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        """Request `url` (POSTing `form` when given); return status, final URL and body."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(url, data=data, headers={"Accept": "text/html"})
        try:
            with self.opener.open(request, timeout=REQUEST_TIMEOUT_S) as response:
                return response.status, response.geturl(), response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.geturl(), error.read().decode(errors="replace")

    def cookie(self, host: str, name: str) -> str | None:
        for cookie in self.jar:
            if cookie.domain == host and cookie.name == name:
                return cookie.value
        return None

    def forget_host(self, host: str) -> None:
        """Drop the cookies of `host`, as a new browser profile would have none."""
        try:
            self.jar.clear(domain=host)
        except KeyError:
            pass


def log_in(browser: Browser, page_url: str, cookie_name: str, login: str = "alice") -> str:
    """Open `page_url`, sign in at the provider if it asks, and return the
    value of the proxy's session cookie `cookie_name`."""
    status, url, body = browser.fetch(page_url)
    # The provider shows at most a login form and a consent form.
    for _ in range(3):
        action = _FORM_ACTION.search(body)
        if 'name="login"' in body and action:
            form = {"prompt": "login", "login": login, "password": "benchmark"}
        elif 'value="consent"' in body and action:
            form = {"prompt": "consent"}
        else:
            break
        status, url, body = browser.fetch(urllib.parse.urljoin(url, action.group(1)), form)
    host = urllib.parse.urlsplit(page_url).hostname or ""
    value = browser.cookie(host, cookie_name)
    if status != 200 or value is None:
        raise LoginError(
            f"login through {page_url} ended at {url} with status {status} "
            f"and {'a' if value else 'no'} {cookie_name} cookie; body starts {body[:200]!r}"
        )
    return value


def many_sessions(page_url: str, cookie_name: str, count: int, workers: int = 4) -> list[str]:
    """Create `count` distinct sessions through the proxy at `page_url`,
    with `workers` browsers in parallel, and return their cookie values."""
    host = urllib.parse.urlsplit(page_url).hostname or ""

    def worker(share: int) -> list[str]:
        browser = Browser()
        values = []
        for _ in range(share):
            # A fresh set of proxy cookies is a new browser for the proxy,
            # while the provider session is reused.
            browser.forget_host(host)
            values.append(log_in(browser, page_url, cookie_name))
        return values

    shares = [count // workers + (1 if index < count % workers else 0) for index in range(workers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(worker, shares))
    sessions = [value for values in results for value in values]
    if len(set(sessions)) != count:
        raise LoginError(f"expected {count} distinct sessions, got {len(set(sessions))}")
    return sessions
