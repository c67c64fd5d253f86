"""Screenshot every tab of the Space, each after a real generation, with headless chromium (for docs/screenshots/).

    .venv/bin/python scripts/space_screenshots.py --model checkpoints/elm-quick --prefix docs/screenshots/space
"""

import shutil
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "space"))


def main():
    from modeling_elm.scripts import command_parser

    parser = command_parser(__doc__, "space_screenshots", prog="scripts/space_screenshots.py")
    parser.add_argument("--model", default="checkpoints/elm-quick")
    parser.add_argument("--prefix", default="docs/screenshots/space")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from app import build_demo
    from elm_space import ElmSpace

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(ElmSpace(args.model))
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("tab").first.wait_for(timeout=60_000)  # the app renders after load
        tabs = [t.inner_text().strip() for t in page.get_by_role("tab").all()]
        for k, name in enumerate(tabs):
            page.get_by_role("tab", name=name).click()
            if name == "Bring your own vector":
                page.get_by_label("A JSON list").fill(str([round(0.05 * ((i * 7) % 11 - 5), 3) for i in range(384)]))
            buttons = [b for b in page.get_by_role("button").all() if b.is_visible() and b.get_attribute("class")
                       and "primary" in b.get_attribute("class")]
            buttons[0].click()
            answer = [a for a in page.get_by_label("ELM says").all() if a.is_visible()][0]
            page.wait_for_function("e => e.value.length > 0", arg=answer.element_handle(), timeout=120_000)
            settled, last = 0, None
            while settled < 3:  # the answer streams in: shoot once it has stopped changing (a busy CPU is slow)
                page.wait_for_timeout(1000)
                settled, last = (settled + 1, last) if answer.input_value() == last else (0, answer.input_value())
            page.wait_for_timeout(1500)  # the map and the neighbours arrive next to the answer
            slug = name.lower().replace(" ", "-").replace("?", "")
            path = ROOT / f"{args.prefix}-{k + 1}-{slug}.png"
            page.screenshot(path=str(path), full_page=True)
            print(f"{name}: {answer.input_value()!r} -> {path.relative_to(ROOT)}")
        browser.close()
    demo.close()


if __name__ == "__main__":
    main()
