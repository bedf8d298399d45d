"""The playground page in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
driven by Selenium) against a real uvicorn server on 127.0.0.1 serving a tiny ensemble.

Every answer the page shows is checked against an independent reference: the same request made
directly to the HTTP API (greedy decoding is deterministic), and the scores against the scorer
functions themselves. Without Chromium the tests skip, except in CI (CI=true), where `make setup`
installs it and they must run. ``MOALIGN_SCREENSHOT=docs/playground.png`` saves the screenshots
the README shows (laptop width, and ``*-phone.png`` at a phone's width).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from helpers_objectives import length_score, make_tiny_ensemble, objective, vowel_score
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from moalign.runs.layout import RunDir
from moalign.serve.app import create_app, serve_in_thread
from moalign.serve.errors import install_error_handlers
from moalign.serve.playground.search import search_points
from moalign.serve.scoring import Scoring, add_scoring_routes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
IN_CI = os.environ.get("CI", "").lower() == "true"
KEY = "playground-test-key"
BEST = {"length": 0.7, "vowel": 0.3}
PROMPT = "I feel stressed about work lately."
MAX_TOKENS = 8
LAPTOP, PHONE = (1280, 1000), (390, 900)
SCORERS = {"length": length_score, "vowel": vowel_score}


def _write_search(run: Path) -> int:
    """A finished 3x3 grid search in RUN/search (the layout `moalign search -e RUN` writes);
    returns the number of distinct points."""
    search = RunDir(run).search
    search.root.mkdir(parents=True, exist_ok=True)
    grid = [(a / 2, b / 2) for a in range(3) for b in range(3) if a or b]
    rows = [{"method": "grid", "iteration": 0, "point": list(p), "normalised": list(p),
             "simplex": False, "score": sum(p) / 2, "objectives": {"length": p[0], "vowel": p[1]},
             "extra": {}} for p in grid]
    search.results.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    search.summary.write_text(json.dumps({"experts": ["length", "vowel"], "simplex": False,
                                          "best_weights": {"length": 1.0, "vowel": 1.0}}))
    front = [{"weights": {"length": 1.0, "vowel": 1.0}, "objectives": {"length": 1.0,
                                                                       "vowel": 1.0},
              "score": 1.0}]
    search.pareto.write_text(json.dumps({"objectives": ["length", "vowel"], "front": front}))
    return len(grid)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_tiny_ensemble(tmp_path_factory.mktemp("playground") / "run", best_weights=BEST)
    _write_search(run)
    return run


@pytest.fixture(scope="module")
def server(run_dir: Path) -> Iterator[str]:
    app = create_app(run_dir, api_key=KEY, device="cpu", threads=1, warmup=False,
                     max_new_tokens_limit=32, default_max_new_tokens=MAX_TOKENS,
                     score=[objective("length"), objective("vowel")])
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def api(server: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server, timeout=120, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM and DRIVER):
        missing = "needs chromium and chromedriver: apt-get install chromium chromium-driver"
        if IN_CI:  # `make setup` installs them in CI, where these tests must run
            pytest.fail(f"CI=true but the browser tests cannot run: {missing}")
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={LAPTOP[0]},{LAPTOP[1]}", "--force-prefers-reduced-motion"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=DriverService(DRIVER or "chromedriver"))
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: webdriver.Chrome, server: str) -> webdriver.Chrome:
    """The page freshly loaded at laptop width, connected with the right key."""
    browser.set_window_size(*LAPTOP)
    browser.get(server + "/")
    browser.execute_script("sessionStorage.clear()")
    connect(browser, KEY)
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card input[type=range]"))
    return browser


def wait(driver: webdriver.Chrome, timeout: float = 60) -> WebDriverWait:
    return WebDriverWait(driver, timeout)


def connect(driver: webdriver.Chrome, key: str) -> None:
    field = driver.find_element(By.ID, "api-key")
    field.clear()
    field.send_keys(key, Keys.ENTER)  # submits the key form


def card(driver: webdriver.Chrome, name: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'.card[data-setting="{name}"]')


def slider(driver: webdriver.Chrome, setting: str, objective_name: str) -> WebElement:
    return card(driver, setting).find_element(
        By.CSS_SELECTOR, f'input[type=range][data-objective="{objective_name}"]')


def set_field(driver: webdriver.Chrome, element_id: str, value: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value)


def generate(driver: webdriver.Chrome, states: tuple[str, ...] = ("done",)) -> list[WebElement]:
    """Click Generate; wait until every card has finished; return the cards."""
    driver.find_element(By.ID, "generate").click()
    wait(driver).until(lambda d: all(
        c.get_attribute("data-state") in (*states, "error")
        for c in d.find_elements(By.CSS_SELECTOR, ".card")))
    wait(driver).until(lambda d: d.find_element(By.ID, "generate").is_enabled())
    return driver.find_elements(By.CSS_SELECTOR, ".card")


def answer_text(element: WebElement) -> str:
    """The answer exactly as streamed into the page (textContent: no whitespace folding)."""
    return element.find_element(By.CSS_SELECTOR, ".answer").get_attribute("textContent") or ""


def alert_text(driver: webdriver.Chrome) -> str:
    alert = driver.find_element(By.CSS_SELECTOR, "[role=alert]")
    wait(driver, 30).until(lambda d: alert.is_displayed())
    return alert.text


def api_answer(api: httpx.Client, weights: dict[str, float]) -> str:
    """The same request as the page makes, without streaming, straight to the HTTP API."""
    model = api.get("/v1/models").json()["data"][0]["id"]
    r = api.post("/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": PROMPT}], "temperature": 0,
        "max_tokens": MAX_TOKENS, "weights": weights, "level": "states"})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def screenshot(driver: webdriver.Chrome, suffix: str = "") -> None:
    target = os.environ.get("MOALIGN_SCREENSHOT")
    if target:
        path = Path(target)
        path = path.with_name(f"{path.stem}{suffix}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(path)), f"could not save {path}"


def test_page_is_open_and_loads_one_slider_per_objective(page: webdriver.Chrome, server: str,
                                                          api: httpx.Client) -> None:
    for path in ("/", "/playground"):  # the page needs no key; the API behind it does
        r = httpx.get(server + path)
        assert r.status_code == 200 and "moalign playground" in r.text
        assert "script-src 'self'" in r.headers["content-security-policy"]
    assert httpx.get(server + "/playground/search").status_code == 401
    objectives = api.get("/objectives").json()
    sliders = card(page, "A").find_elements(By.CSS_SELECTOR, "input[type=range]")
    assert [s.get_attribute("data-objective") for s in sliders] == objectives["objectives"]
    for s, name in zip(sliders, objectives["objectives"], strict=True):
        label = page.find_element(By.CSS_SELECTOR, f'label[for="{s.get_attribute("id")}"]')
        assert label.text == name
        assert float(s.get_attribute("value")) == pytest.approx(BEST[name])
    levels = [o.text for o in Select(page.find_element(By.ID, "level")).options]
    assert levels == objectives["levels"]
    # the plot: every searched point, the Pareto front, the best weights and setting A
    n_points = len(api.get("/playground/search").json()["points"])
    assert n_points == 8
    assert len(page.find_elements(By.CSS_SELECTOR, "#plot circle.pt")) == n_points
    assert len(page.find_elements(By.CSS_SELECTOR, "#plot circle.front")) == 1
    assert len(page.find_elements(By.CSS_SELECTOR, "#plot circle.cur")) == 1
    assert "8 searched points" in page.find_element(By.ID, "plot-desc").text


def test_one_hot_slider_greedy_answer_equals_the_api(page: webdriver.Chrome,
                                                     api: httpx.Client) -> None:
    one_hot = {"length": 1.0, "vowel": 0.0}
    expected = api_answer(api, one_hot)
    assert expected and expected != api_answer(api, BEST)  # the weights change the answer
    slider(page, "A", "length").send_keys(Keys.END)  # moved with the keyboard: 1
    slider(page, "A", "vowel").send_keys(Keys.HOME)  # 0
    assert card(page, "A").find_element(By.CSS_SELECTOR, ".weights-line").text == \
        "share: length 100% · vowel 0%"
    set_field(page, "max-tokens", str(MAX_TOKENS))
    (done,) = generate(page)
    assert done.get_attribute("data-state") == "done", alert_text(page)
    assert answer_text(done) == expected
    for name, fn in SCORERS.items():  # scores next to the answer, from the scorer itself
        shown = done.find_element(By.CSS_SELECTOR, f'.scores dd[data-objective="{name}"]').text
        assert shown == f"{fn([PROMPT], [expected])[0]:.3f}"


def test_compare_mode_shows_one_answer_per_setting(page: webdriver.Chrome,
                                                   api: httpx.Client) -> None:
    Select(page.find_element(By.ID, "compare")).select_by_value("3")
    set_field(page, "max-tokens", str(MAX_TOKENS))
    cards = generate(page)
    assert [c.get_attribute("data-setting") for c in cards] == ["A", "B", "C"]
    settings = [BEST, {"length": 1.0, "vowel": 0.0}, {"length": 0.0, "vowel": 1.0}]
    for c, weights in zip(cards, settings, strict=True):
        assert c.get_attribute("data-state") == "done"
        assert answer_text(c) == api_answer(api, weights)
    assert len(page.find_elements(By.CSS_SELECTOR, "#plot circle.cur")) == 3
    screenshot(page)
    page.set_window_size(*PHONE)  # a phone's width: one column, nothing wider than the screen
    wait(page, 10).until(lambda d: d.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"))
    screenshot(page, "-phone")
    Select(page.find_element(By.ID, "compare")).select_by_value("2")
    assert len(page.find_elements(By.CSS_SELECTOR, ".card")) == 2


def test_wrong_key_shows_the_servers_error(page: webdriver.Chrome) -> None:
    field = page.find_element(By.ID, "api-key")
    field.clear()
    field.send_keys("not-the-key")  # typed, not submitted: the next request sends it
    (failed,) = generate(page, states=("error",))
    assert failed.get_attribute("data-state") == "error"
    text = alert_text(page)
    assert "HTTP 401" in text and "API key" in text
    connect(page, "not-the-key")  # submitted: kept for this tab only, the objectives refused
    wait(page, 30).until(lambda d: "Could not load" in alert_text(d))
    assert "HTTP 401" in alert_text(page)
    assert page.execute_script("return sessionStorage.getItem('moalign.playground.apiKey')") \
        == "not-the-key"


@pytest.mark.parametrize(("case", "message"), [
    ("zero", "all zero"), ("tokens", "max_new_tokens_limit=32")])
def test_invalid_weights_and_limits_show_the_servers_error(page: webdriver.Chrome, case: str,
                                                           message: str) -> None:
    if case == "zero":
        for name in SCORERS:
            slider(page, "A", name).send_keys(Keys.HOME)
    else:
        set_field(page, "max-tokens", "999")
    (failed,) = generate(page, states=("error",))
    assert failed.get_attribute("data-state") == "error"
    assert message in alert_text(page)



# ----------------------------------------------------------------------------- without a browser


def _search_rows(points: list[tuple[float, float]], score: float = 0.5) -> str:
    return "".join(json.dumps({"point": [2 * a, 2 * b], "normalised": [a, b], "simplex": True,
                               "score": score, "objectives": {"length": a}}) + "\n"
                   for a, b in points)


def test_search_points_read_the_runs_search(tmp_path: Path) -> None:
    names = ["length", "vowel"]
    missing = search_points(tmp_path, names)
    assert not missing["available"] and "moalign search -e" in missing["reason"]
    seed_search = RunDir(tmp_path).seed(0).search  # a study's first seed
    seed_search.root.mkdir(parents=True)
    seed_search.results.write_text(_search_rows([(0.5, 0.5), (1.0, 0.0), (0.5, 0.5)]) +
                                   json.dumps({"point": [1.0], "normalised": [1.0]}) + "\n")
    got = search_points(tmp_path, names)
    assert got["available"] and got["source"] == "seed_0/search" and got["simplex"]
    # the decoded (normalised) points, once each; a point of another width is left out
    assert [p["weights"] for p in got["points"]] == [{"length": 0.5, "vowel": 0.5},
                                                     {"length": 1.0, "vowel": 0.0}]
    assert got["front"] == [] and got["best_weights"] is None
    own = RunDir(tmp_path).search  # `moalign search -e RUN` wins over the seed's
    own.root.mkdir()
    own.results.write_text(_search_rows([(0.25, 0.75)], score=float("nan")).replace(
        "NaN", "Infinity"))
    own.summary.write_text(json.dumps({"experts": names, "simplex": False,
                                       "best_weights": {"length": 0.25, "vowel": 0.75}}))
    got = search_points(tmp_path, names)
    assert got["source"] == "search" and not got["simplex"]
    assert got["points"] == [{"weights": {"length": 0.25, "vowel": 0.75}, "score": None,
                              "objectives": {"length": 0.25}}]  # JSON-safe: inf -> None
    assert got["best_weights"] == {"length": 0.25, "vowel": 0.75}
    other = search_points(tmp_path, ["vowel", "length"])  # a search of other experts
    assert not other["available"] and "weighs ['length', 'vowel']" in other["reason"]


def test_score_routes() -> None:
    off, on = FastAPI(), FastAPI()
    for app, specs in ((off, None), (on, [objective("length"), objective("vowel")])):
        install_error_handlers(app)
        add_scoring_routes(app, Scoring.from_specs(specs))
    body = {"prompt": PROMPT, "responses": ["Take a short walk.", "Ok", ""]}
    with TestClient(off) as client:
        assert client.get("/score").json() == {"objectives": [], "higher_is_better": {}}
        r = client.post("/score", json=body)
        assert r.status_code == 404 and "--score reflection" in r.json()["error"]["message"]
    with TestClient(on) as client:
        info = client.get("/score").json()
        assert info == {"objectives": ["length", "vowel"],
                        "higher_is_better": {"length": True, "vowel": True}}
        got = client.post("/score", json=body).json()
        prompts = [PROMPT] * 3
        expected = zip(length_score(prompts, body["responses"]),
                       vowel_score(prompts, body["responses"]), strict=True)
        assert got["scores"] == [{"length": pytest.approx(a, rel=1e-6),  # float32 scores
                                  "vowel": pytest.approx(b, rel=1e-6)} for a, b in expected]
