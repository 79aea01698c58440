#!/bin/sh
# Entrypoint of the nginx stand-in: what the official image's entrypoint does that we rely on.
# When the command is nginx, every $NGINX_ENVSUBST_TEMPLATE_DIR/**/*.template (default
# /etc/nginx/templates) is rendered with envsubst into $NGINX_ENVSUBST_OUTPUT_DIR (default
# /etc/nginx/conf.d) under the same relative name minus the suffix. Only variables defined in
# the environment are substituted, so nginx's own $variables survive.
set -eu

case "${1:-}" in
    nginx|nginx-debug)
        dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
        suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
        out="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
        if [ -d "$dir" ]; then
            # "${A} ${B} ..." for every defined variable (names only: values never reach a shell).
            defined="$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')"
            find "$dir" -follow -type f -name "*$suffix" | while read -r template; do
                relative="${template#"$dir"/}"
                target="$out/${relative%"$suffix"}"
                mkdir -p "$(dirname "$target")"
                echo "$0: rendering $template to $target" >&2
                envsubst "$defined" < "$template" > "$target"
            done
        fi
        ;;
esac

exec "$@"
