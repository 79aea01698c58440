"""A real Django project for the tests: ``django-admin startproject``, an app with a model
registered in the admin, sqlite, migrated, with a superuser. Built in subprocesses, so the test
process never imports Django."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SETTINGS = """
import os as _os
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "example.test"]
INSTALLED_APPS += ["polls"]
STATIC_ROOT = BASE_DIR / "collected"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = ["https://example.test"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 10_000
FILE_UPLOAD_TEMP_DIR = _os.environ["TEST_UPLOAD_DIR"]
"""
MODELS = """
from django.db import models

class Question(models.Model):
    text = models.CharField(max_length=200)
"""
ADMIN = """
from django.contrib import admin
from .models import Question

admin.site.register(Question)
"""
APPS = """
import os
from django.apps import AppConfig

class PollsConfig(AppConfig):
    name = "polls"

    def ready(self):
        from django.core.signals import request_finished, request_started

        def mark(kind):
            def handler(sender, **kwargs):
                with open(os.environ["TEST_SIGNAL_LOG"], "a") as f:
                    f.write(kind + "\\n")
            return handler

        self.handlers = mark("started"), mark("finished")
        request_started.connect(self.handlers[0])
        request_finished.connect(self.handlers[1])
"""
VIEWS = """
import asyncio, os, time
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from .models import Question

def question(request):
    return HttpResponse(Question.objects.get(pk=1).text)

@csrf_exempt
def upload(request):
    f = request.FILES["f"]
    path = f.temporary_file_path() if hasattr(f, "temporary_file_path") else ""
    exists = bool(path) and os.path.exists(path)
    return JsonResponse({"size": f.size, "path": path, "exists": exists})

def stream(request):
    def chunks():
        for _ in range(2000):
            time.sleep(0.005)
            yield b"x" * 1000
    return StreamingHttpResponse(chunks())

def seeked(request):
    f = open(os.environ["TEST_BLOB"], "rb")
    f.seek(int(request.GET["at"]))
    return FileResponse(f)

async def pause(request):
    await asyncio.sleep(0.01)
    return HttpResponse("async ok")
"""
URLS = """
from django.contrib import admin
from django.urls import path
from polls import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("question/", views.question),
    path("upload/", views.upload),
    path("stream/", views.stream),
    path("seeked/", views.seeked),
    path("pause/", views.pause),
]
"""
SETUP = """
import django
from django.core.management import call_command
django.setup()
call_command("makemigrations", "polls", verbosity=0)
call_command("migrate", verbosity=0)
from django.contrib.auth.models import User
from polls.models import Question
User.objects.create_superuser("admin", "admin@example.com", "pw")
Question.objects.create(text="first")
"""


def build(root: Path) -> Path:
    """Make the project under ``root``; returns its directory (``manage.py``'s)."""
    project = root / "project"
    project.mkdir(parents=True)
    run = [sys.executable, "-m", "django"]
    subprocess.run([*run, "startproject", "mysite", str(project)], check=True)
    (project / "polls").mkdir()
    subprocess.run([*run, "startapp", "polls", str(project / "polls")], check=True)
    with open(project / "mysite" / "settings.py", "a") as f:
        f.write(SETTINGS)
    for name, text in (("models", MODELS), ("admin", ADMIN), ("apps", APPS), ("views", VIEWS)):
        (project / "polls" / f"{name}.py").write_text(text)
    (project / "mysite" / "urls.py").write_text(URLS)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mysite.settings", "TEST_UPLOAD_DIR": str(root)}
    # The project on the path by name: the compiled build's runs set PYTHONSAFEPATH, which
    # leaves the working directory off a `python -c`'s path.
    env["PYTHONPATH"] = str(project)
    subprocess.run([sys.executable, "-c", SETUP], cwd=project, env=env, check=True)
    return project
