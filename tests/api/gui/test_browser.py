"""The GUI in a real headless Chromium against a real `reconciler serve` with real Envoys: the
flows of issue 14. Proxies come online on the dataplane list, a rejected commit's error appears
in the history, a wrong token shows the 401, a pin from the history page shows in the status and
resume lifts it, a commit's diff page; all without reloading where a user would watch the page.
A screenshot of every page is saved under the test's output directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException

from tests.api.gui.browser import By, Screens, WebDriver, console_errors, start_browser, wait_for
from tests.api.gui.repo import timeout_policy
from tests.api.support import admin_token
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, free_port
from tests.gitops.helpers import mesh
from tests.support import dataplane_yaml

# Real Envoys connect, so the compact-outbound pass of `make test` runs these too (marker envoy).
pytestmark = [pytest.mark.browser, pytest.mark.envoy]

HOSTILE = '<img src=x onerror="window.pwned=1">'


@dataclass
class Gui:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    driver: WebDriver
    screens: Screens
    ports: dict[str, int]
    root: Path
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)

    def files(self, timeout: str = "2s") -> dict[str, str | None]:
        p = self.ports
        return {
            "meshes/default.yaml": mesh(),
            "dataplanes/web.yaml": dataplane_yaml(
                "web", "web", p["web_in"], p["web_app"], {"backend": p["web_to_backend"]}, admin_port=p["web_admin"]
            ),
            "dataplanes/backend.yaml": dataplane_yaml(
                "backend-1", "backend", p["backend_in"], p["backend_app"], admin_port=p["backend_admin"]
            ),
            "policies/timeout.yaml": timeout_policy(timeout),
        }

    def envoy(self, name: str) -> EnvoyProcess:
        envoy = self.envoys[name] = EnvoyProcess(
            self.cp, self.root / "envoys", name=name, admin_port=self.ports[f"{name.split('-')[0]}_admin"]
        )
        envoy.start()
        return envoy

    def open(self, path: str) -> None:
        self.driver.get(self.cp.api + path)

    def text(self, css: str) -> str:
        """The first match's text, "" when nothing matches (read again if a live refresh replaced it)."""
        for _ in range(5):
            try:
                found = self.driver.find_elements(By.CSS_SELECTOR, css)
                return found[0].text if found else ""
            except StaleElementReferenceException:
                continue
        raise AssertionError(f"{css} kept being replaced")

    def use_token(self, token: str) -> None:
        field_ = self.driver.find_element(By.ID, "admin-token")
        field_.clear()
        field_.send_keys(token)
        self.driver.find_element(By.ID, "token-save").click()
        wait_for(self.driver, lambda d: self.text("#token-state") == "token set for this tab", "the token to be kept")


@pytest.fixture(scope="module")
def gui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gui]:
    """A control plane serving web and backend-1, web's Envoy connected, and one browser."""
    root = tmp_path_factory.mktemp("gui-browser")
    remote = ConfigRemote(root)
    names = ("web_in", "web_app", "web_to_backend", "web_admin", "backend_in", "backend_app", "backend_admin")
    ports = {k: free_port() for k in names}
    cp = ControlPlaneProcess(remote.bare, root / "state", dataplane_auth=False, xds_tls=False)
    driver = start_browser(root / "chromium-profile")
    g = Gui(remote, cp, driver, Screens(root / "screenshots"), ports, root)
    try:
        first = remote.push(g.files(), "web calls backend")
        cp.start()
        g.envoy("web")
        cp.wait_applied(first, ["default.web"])
        yield g
    finally:
        driver.quit()
        for envoy in g.envoys.values():
            envoy.stop()
        cp.stop()


def attribute(g: Gui, css: str, name: str) -> str:
    found = g.driver.find_elements(By.CSS_SELECTOR, css)
    return (found[0].get_attribute(name) or "") if found else ""


def row_online(g: Gui, name: str) -> str:
    return attribute(g, f'tr.dataplane[data-name="{name}"]', "data-online")


def test_the_dataplane_list_shows_proxies_coming_online(gui: Gui) -> None:
    gui.open("/gui/dataplanes")
    wait_for(gui.driver, lambda d: row_online(gui, "web") == "true", "web online")
    assert row_online(gui, "backend-1") == "false"
    gui.driver.execute_script("window.notReloaded = true")
    gui.envoy("backend-1")
    wait_for(gui.driver, lambda d: row_online(gui, "backend-1") == "true", "backend-1 online without a reload")
    wait_for(gui.driver, lambda d: "CDS ACK" in gui.text('tr.dataplane[data-name="backend-1"]'), "backend-1's CDS ACKed")
    row = gui.text('tr.dataplane[data-name="web"]')
    assert "Online" in row and all(f"{t} ACK" in row for t in ("CDS", "EDS", "LDS")), row
    assert gui.driver.execute_script("return window.notReloaded") is True
    gui.screens.save(gui.driver, "dataplanes")

    gui.driver.find_element(By.CSS_SELECTOR, 'tr.dataplane[data-name="web"] td.name a').click()
    wait_for(gui.driver, lambda d: gui.text("#dp-name") == "web", "web's page")
    xds = gui.text("#xds-table")
    assert "CDS ACK" in xds and "LDS ACK" in xds, xds
    assert "backend" in gui.text("main")  # its outbound
    gui.screens.save(gui.driver, "dataplane")
    # Its merged rules (Kuma's _rules), one section per policy type: open MeshTimeout's.
    timeout_rules = 'details.rule[data-type="MeshTimeout"]'
    gui.driver.find_element(By.CSS_SELECTOR, f"{timeout_rules} summary").click()
    rules = gui.text(timeout_rules)
    assert "MeshTimeout default/quick" in rules and '"connectionTimeout"' in rules, rules
    gui.driver.execute_script("document.getElementById('rules').scrollIntoView()")
    gui.screens.save(gui.driver, "dataplane-rules")


def test_a_rejected_commit_shows_its_error_in_the_history_without_reloading(gui: Gui) -> None:
    gui.open("/gui/history")
    gui.driver.execute_script("window.notReloaded = true")
    bad = gui.remote.push(gui.files(timeout="0s"), f"{HOSTILE} a zero timeout")
    row = f'tr.commit[data-revision="{bad}"]'
    wait_for(gui.driver, lambda d: attribute(gui, row, "data-outcome") == "rejected", "the commit rejected in the history")
    text = gui.text(row)
    assert "rejected" in text
    problem = gui.text(f"{row} li.problem")
    assert problem.startswith("policies/timeout.yaml:"), problem
    assert int(problem.split(":")[1].split()[0]) > 0, problem  # a line number
    assert "MeshTimeout default/quick" in problem
    # The subject is shown as the text it is; nothing in it ran.
    assert HOSTILE in text
    assert gui.driver.find_elements(By.CSS_SELECTOR, f"{row} img") == []
    assert gui.driver.execute_script("return window.pwned") is None
    # The status strip followed, and the page was never reloaded.
    wait_for(gui.driver, lambda d: "Ready: False" in gui.text("#ready"), "Ready False in the status strip")
    assert gui.driver.execute_script("return window.notReloaded") is True
    gui.screens.save(gui.driver, "history-rejected")
    good = gui.remote.push(gui.files(), "back to a 2s timeout")
    gui.cp.wait_applied(good)


def test_a_wrong_token_shows_the_401_message(gui: Gui) -> None:
    gui.open("/gui")
    gui.use_token("not-the-token")
    gui.driver.find_element(By.ID, "reconcile-now").click()
    wait_for(gui.driver, lambda d: "HTTP 401" in gui.text("#action-result"), "the 401 answer")
    message = gui.text("#action-result")
    assert "reconcile now: HTTP 401: POST /reconcile changes what is served and needs the admin token" in message
    # Kept in this tab's sessionStorage: never in a cookie or the address.
    assert gui.driver.execute_script("return sessionStorage.getItem('reconciler.adminToken')") == "not-the-token"
    assert gui.driver.execute_script("return document.cookie") == ""
    assert "not-the-token" not in gui.driver.current_url
    gui.screens.save(gui.driver, "wrong-token")


def test_pin_a_commit_from_the_history_then_resume(gui: Gui) -> None:
    a = gui.remote.push(gui.files(timeout="3s"), "A: a 3s timeout")
    gui.cp.wait_applied(a, ["default.web"])
    b = gui.remote.push(gui.files(timeout="4s"), "B: a 4s timeout")
    gui.cp.wait_applied(b, ["default.web"])
    gui.open("/gui/history")
    gui.use_token(admin_token(gui.cp.state_dir))
    wait_for(gui.driver, lambda d: gui.text(f'tr.commit[data-revision="{b}"]'), "B in the history")
    gui.driver.find_element(By.CSS_SELECTOR, f'button[data-action="rollback"][data-revision="{a}"]').click()
    wait_for(gui.driver, lambda d: "HTTP 200" in gui.text("#action-result"), "the pin's answer")
    wait_for(gui.driver, lambda d: a[:12] in gui.text("#pinned"), "pinned to A in the status strip")
    assert gui.text("#served-revision") == a[:12]
    assert "pinned" in gui.text(f'tr.commit[data-revision="{a}"]')
    status = gui.cp.get("/status")
    assert status["pinnedRevision"] == f"main@sha1:{a}"
    assert status["lastAppliedRevision"] == f"main@sha1:{a}"
    gui.screens.save(gui.driver, "history-pinned")

    gui.driver.find_element(By.ID, "resume").click()
    wait_for(gui.driver, lambda d: not gui.text("#pinned"), "the pin gone from the status strip")
    wait_for(gui.driver, lambda d: gui.text("#served-revision") == b[:12], "serving B again")
    assert gui.cp.get("/status")["pinnedRevision"] == ""


def test_the_diff_page_of_a_commit(gui: Gui) -> None:
    extra = timeout_policy("9s", name="slow")
    rev = gui.remote.push({**gui.files(timeout="5s"), "policies/slow.yaml": extra}, "5s, and a slow policy")
    gui.cp.wait_applied(rev)
    gui.open("/gui/history")
    wait_for(gui.driver, lambda d: gui.text(f'tr.commit[data-revision="{rev}"]'), "the commit in the history")
    gui.driver.find_element(By.CSS_SELECTOR, f'tr.commit[data-revision="{rev}"] a').click()
    wait_for(gui.driver, lambda d: gui.text("#diff-revision") == rev[:12], "the diff page")
    assert "+ MeshTimeout default/slow policies/slow.yaml:" in gui.text("ul.added")
    changed = gui.text("article.changed")
    assert changed.startswith("~ MeshTimeout default/quick policies/timeout.yaml:"), changed
    assert "/spec/to/0/default/connectionTimeout" in changed and '"4s"' in changed and '"5s"' in changed, changed
    gui.screens.save(gui.driver, "diff")


@pytest.mark.parametrize(
    ("path", "name", "heading"),
    [
        ("/gui", "home", "Overview"),
        ("/gui/meshes", "meshes", "Meshes"),
        ("/gui/meshes/default", "mesh", "Mesh default"),
        ("/gui/services", "services", "Services"),
        ("/gui/policies", "policies", "Policies"),
    ],
)
def test_every_page_renders_with_no_console_error(gui: Gui, path: str, name: str, heading: str) -> None:
    console_errors(gui.driver)  # what earlier pages left
    gui.open(path)
    wait_for(gui.driver, lambda d: gui.text("h1") == heading, f"{path}'s heading")
    wait_for(gui.driver, lambda d: gui.text("#live-state") == "live", "the first live poll")
    assert console_errors(gui.driver) == []
    gui.screens.save(gui.driver, name)
