"""The dashboard shell: Dash pages, a navbar, and a per-app cache of loaded checkpoints.

``create_app(dirs)`` builds the app; pages live in ``apps/pages`` and reach the app's state
through ``app_state()`` (the checkpoint dirs and the model cache, both in ``server.config``).
"""

from __future__ import annotations

import itertools
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


class ThreadedJobManager(dash.DiskcacheManager):
    """Dash's diskcache manager, but each background job runs in a thread of the server process
    instead of a forked process.

    Why: the models live in the server's ModelCache, on the GPU when there is one, and CUDA
    cannot be used in a forked child; forking a multi-threaded server can also inherit locks held
    by other threads (the model cache's, OpenMP's), which hangs the job. In a thread, a job shares
    the loaded models and torch releases the GIL during its work. Progress and results still go
    through the diskcache, so Dash's polling protocol is unchanged. A job cannot be killed
    midway; a cancelled job finishes and its result is dropped.
    """

    def __init__(self, cache, **kwargs):
        super().__init__(cache, **kwargs)
        self._jobs: dict[int, threading.Thread] = {}
        self._ids = itertools.count(1)
        self._jobs_lock = threading.Lock()

    def call_job_fn(self, key, job_fn, args, context):
        with self._jobs_lock:
            job = next(self._ids)
            self._jobs = {j: t for j, t in self._jobs.items() if t.is_alive()}
            thread = threading.Thread(target=job_fn, args=(key, self._make_progress_key(key), args, context),
                                      name=f"dash-job-{job}", daemon=True)
            self._jobs[job] = thread
        thread.start()
        return job

    def job_running(self, job) -> bool:
        thread = self._jobs.get(int(job)) if job else None
        return thread is not None and thread.is_alive()

    def terminate_job(self, job) -> None:
        return None  # threads cannot be killed; the job ends by itself

    def terminate_unhealthy_job(self, job) -> bool:
        return False


def background_manager(job_dir: str | Path) -> ThreadedJobManager:
    """Runs long callbacks (``background=True``) in server threads; progress and results go
    through a diskcache under ``job_dir``."""
    import diskcache

    Path(job_dir).mkdir(parents=True, exist_ok=True)
    return ThreadedJobManager(diskcache.Cache(str(job_dir)))


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
