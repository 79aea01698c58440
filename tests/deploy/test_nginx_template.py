"""deploy/nginx/templates/default.conf.template: rendered and checked by the real ``nginx -t``.

What ``nginx -t`` checks here: the template rendered with compose's environment values, inside
deploy/nginx.conf (the main config; in Docker the image's own main config includes the rendered
file the same way), in a throwaway prefix. The values are compose's own, upstream ``app:3031``
included: the upstream is a variable, which nginx resolves per request through the ``resolver``
(Docker's DNS, 127.0.0.11) rather than once at start, so ``nginx -t`` outside compose accepts a
name that only resolves inside it. The rendered loopback config (``make run``) has no resolver.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy.deploy_testkit import COMPOSE_FILE, ROOT, TEMPLATE, load_stack, load_yaml
from support.procs import nginx_binary

pytestmark = pytest.mark.nginx


def nginx_test(prefix: Path) -> subprocess.CompletedProcess[str]:
    stack = load_stack()
    binary = nginx_binary()
    assert binary, "nginx is not installed (.ci/run installs it)"
    argv = stack.nginx_command(binary, prefix)
    argv.insert(1, "-t")
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def compose_nginx_env() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    env: dict[str, Any] = data["services"]["nginx"]["environment"]
    return env


def test_rendered_with_compose_values_passes_nginx_t(tmp_path: Path, nginx_available: None) -> None:
    stack = load_stack()
    values = dict(compose_nginx_env())
    assert values["UWSGIAPP_UPSTREAM"] == "app:3031"
    prefix = stack.write_nginx_prefix(tmp_path / "compose", values)
    rendered = (prefix / "conf.d" / "default.conf").read_text()
    assert "listen 80 default_server;" in rendered
    assert 'alias "/srv/static/";' in rendered
    assert "\nresolver 127.0.0.11 valid=1s ipv6=off;\n" in rendered
    assert 'set $uwsgiapp_upstream "app:3031";' in rendered
    result = nginx_test(prefix)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_rendered_for_loopback_passes_nginx_t(tmp_path: Path, nginx_available: None) -> None:
    stack = load_stack()
    values = stack.nginx_values(8080, "127.0.0.1:3031")
    prefix = stack.write_nginx_prefix(tmp_path / "local", values)
    rendered = (prefix / "conf.d" / "default.conf").read_text()
    assert "listen 127.0.0.1:8080 default_server;" in rendered
    assert f'alias "{ROOT / "examples" / "static"}/";' in rendered
    assert 'set $uwsgiapp_upstream "127.0.0.1:3031";' in rendered
    # An address needs no resolver; the line the compose resolver goes on is a comment.
    assert not re.search(r"(?m)^\s*resolver\s", rendered)
    result = nginx_test(prefix)
    assert result.returncode == 0, result.stderr


def test_render_substitutes_only_the_given_names() -> None:
    stack = load_stack()
    text = "a ${ONE} b $ONE c $ONEMORE $remote_addr ${host}"
    with pytest.raises(stack.StackError, match="ONEMORE"):
        stack.render_template(text, {"ONE": "1"})
    out = stack.render_template("a ${ONE} b $ONE c $remote_addr", {"ONE": "1"})
    assert out == "a 1 b 1 c $remote_addr"
    with pytest.raises(stack.StackError, match="NGINX_LISTEN"):
        stack.render_template(TEMPLATE.read_text(), {"UWSGIAPP_UPSTREAM": "x:1"})


def directives(name: str) -> list[str]:
    """Arguments of every ``name`` directive in the template (comments stripped)."""
    text = re.sub(r"#.*", "", TEMPLATE.read_text())
    return [m.group(1).strip() for m in re.finditer(rf"(?m)^\s*{name}\s+([^;]*);", text)]


def test_template_directives() -> None:
    # Retry only failures that happen before the app got the request; never non_idempotent.
    # Every resolved address may be tried (0), within the retry timeout.
    assert directives("uwsgi_next_upstream") == ["error timeout"]
    assert directives("uwsgi_next_upstream_tries") == ["0"]
    assert directives("uwsgi_next_upstream_timeout") == ["10s"]
    # A replica gone from Docker but still in nginx's DNS cache answers nothing: each
    # connection that picks it waits this long (2 s stalled the whole site at a scale-down).
    assert directives("uwsgi_connect_timeout") == ["250ms"]
    assert "non_idempotent" not in TEMPLATE.read_text().replace("`non_idempotent`", "")
    # The standard params are inline: nothing depends on the distribution's uwsgi_params.
    assert not directives("include")
    params = {arg.split()[0] for arg in directives("uwsgi_param")}
    assert params >= {
        "QUERY_STRING",
        "REQUEST_METHOD",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "REQUEST_URI",
        "PATH_INFO",
        "DOCUMENT_ROOT",
        "SERVER_PROTOCOL",
        "REQUEST_SCHEME",
        "HTTPS",
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "SERVER_PORT",
        "SERVER_NAME",
    }
    # Re-resolution: the upstream is a variable (resolved per request through `resolver`,
    # which NGINX_RESOLVER provides), never a name in an `upstream {}` block (resolved once).
    assert directives("uwsgi_pass") == ["$uwsgiapp_upstream"]
    assert directives("set") == ['$uwsgiapp_upstream "${UWSGIAPP_UPSTREAM}"']
    assert not directives("upstream") and "upstream uwsgiapp" not in TEMPLATE.read_text()
    assert "\n${NGINX_RESOLVER}\n" in TEMPLATE.read_text()
    assert directives("resolver_timeout") == ["2s"]
    assert directives("client_max_body_size")
    assert directives("uwsgi_buffer_size") and directives("uwsgi_buffers")
    assert directives("access_log")[0] == "/dev/stdout uwsgiapp_json"
