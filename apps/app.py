"""The dashboard shell: Dash pages, a navbar, and a per-app cache of loaded checkpoints.

``create_app(dirs)`` builds the app; pages live in ``apps/pages`` and reach the app's state
through ``app_state()`` (the checkpoint dirs and the model cache, both in ``server.config``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import dash
from dash import dcc, html

from dcgan_viz.checkpoint import Bundle, load_checkpoint, resolve_checkpoint

PAGES_FOLDER = Path(__file__).resolve().parent / "pages"
MODELS_KEY = "DCGAN_MODELS"
DIRS_KEY = "DCGAN_CHECKPOINT_DIRS"
JOB_DIR = Path("cache/dashboard-jobs")


class ModelCache:
    """Thread-safe LRU of loaded checkpoint bundles, keyed by the resolved checkpoint path.

    Each checkpoint is loaded once (on ``device``; None = CUDA when available). Loads are
    serialised by the lock, so two requests never load the same checkpoint twice.
    """

    def __init__(self, maxsize: int = 4, device=None):
        self.maxsize = maxsize
        self.device = device
        self._lock = threading.Lock()
        self._bundles: OrderedDict[Path, Bundle] = OrderedDict()

    def get(self, path: str | Path) -> Bundle:
        key = resolve_checkpoint(path).resolve()
        with self._lock:
            bundle = self._bundles.get(key)
            if bundle is None:
                bundle = load_checkpoint(key, device=self.device)
                self._bundles[key] = bundle
            self._bundles.move_to_end(key)
            while len(self._bundles) > self.maxsize:
                self._bundles.popitem(last=False)
            return bundle

    def __len__(self) -> int:
        with self._lock:
            return len(self._bundles)


def app_state() -> tuple[list[Path], ModelCache]:
    """(checkpoint dirs, model cache) of the running app, for page callbacks."""
    config = dash.get_app().server.config
    return config[DIRS_KEY], config[MODELS_KEY]


def navbar() -> html.Nav:
    links = [dcc.Link(page["name"], href=page["relative_path"], style={"marginRight": "1.5em"})
             for page in dash.page_registry.values()]
    return html.Nav([html.Strong("dcgan-viz", style={"marginRight": "2em"}), *links],
                    style={"padding": "0.6em 1em", "borderBottom": "1px solid #ddd", "marginBottom": "1em"})


def background_manager(job_dir: str | Path) -> dash.DiskcacheManager:
    """Runs long callbacks (``background=True``) in worker processes; progress and results go
    through a diskcache under ``job_dir``."""
    import diskcache

    Path(job_dir).mkdir(parents=True, exist_ok=True)
    return dash.DiskcacheManager(diskcache.Cache(str(job_dir)))


def create_app(checkpoint_dirs: list[Path], device=None, cache_size: int = 4,
               job_dir: str | Path = JOB_DIR) -> dash.Dash:
    """The dashboard over every checkpoint directory found under ``checkpoint_dirs``; background
    jobs keep their state under ``job_dir``."""
    # name="apps" makes Dash import the pages as apps.pages.<name>, the same module a plain import gives
    app = dash.Dash("apps", use_pages=True, pages_folder=str(PAGES_FOLDER), title="dcgan-viz",
                    suppress_callback_exceptions=True, background_callback_manager=background_manager(job_dir))
    app.server.config[DIRS_KEY] = [Path(d) for d in checkpoint_dirs]
    app.server.config[MODELS_KEY] = ModelCache(cache_size, device)
    app.layout = html.Div([
        dcc.Location(id="url", refresh=False),
        navbar(),
        html.Main(dash.page_container, style={"padding": "0 1em"}),
    ], style={"fontFamily": "system-ui, sans-serif"})
    return app
