# labenv: export the lab's connection settings (the labenv-connection Secret, mounted as files by the
# workspace Deployment and kept current by the kubelet) into interactive shells.
if [ -d "${LAB_CONNECTION_DIR:-/etc/lab/connection}" ]; then
  for _lab_f in "${LAB_CONNECTION_DIR:-/etc/lab/connection}"/*; do
    [ -f "$_lab_f" ] || continue
    _lab_k="${_lab_f##*/}"
    case "$_lab_k" in
      *[!A-Za-z0-9_]* | [0-9]*) continue ;;
    esac
    export "$_lab_k=$(cat "$_lab_f")"
  done
  unset _lab_f _lab_k
fi
