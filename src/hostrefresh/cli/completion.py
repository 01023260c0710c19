"""Shell completion: ``completion bash|zsh|fish`` prints a script; ``__complete WORDS...`` answers in
Cobra's format (candidates, then ``:4``), which is also what kubectl asks ``kubectl_complete-hostrefresh``
for when completing ``kubectl hostrefresh ...`` (kubectl 1.26+)."""

from __future__ import annotations

import argparse

from lightkube import Client
from rich.console import Console

from hostrefresh.cli import fetch
from hostrefresh.cli.errors import CliError, Exit

#: Cobra's ShellCompDirectiveNoFileComp: do not fall back to file names.
NO_FILE_COMP = ":4"
NAME_VERBS = {"get", "status", "watch", "describe", "pause", "resume", "abort", "retry", "approve", "timeline"}

BASH = r"""# kubectl-hostrefresh bash completion: source <(kubectl-hostrefresh completion bash)
_kubectl_hostrefresh() {
    local IFS=$'\n'
    local words=("${COMP_WORDS[@]:1:COMP_CWORD}")
    COMPREPLY=($(kubectl-hostrefresh __complete "${words[@]}" 2>/dev/null | grep -v '^:'))
}
complete -F _kubectl_hostrefresh kubectl-hostrefresh
"""
ZSH = r"""#compdef kubectl-hostrefresh
# kubectl-hostrefresh zsh completion: source <(kubectl-hostrefresh completion zsh)
_kubectl_hostrefresh() {
    local -a candidates
    candidates=("${(@f)$(kubectl-hostrefresh __complete "${(@)words[2,CURRENT]}" 2>/dev/null | grep -v '^:')}")
    compadd -a candidates
}
compdef _kubectl_hostrefresh kubectl-hostrefresh
"""
FISH = r"""# kubectl-hostrefresh fish completion: kubectl-hostrefresh completion fish | source
complete -c kubectl-hostrefresh -f -a '(kubectl-hostrefresh __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null | string match -v ":*")'
"""
SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}


def cmd_completion(client: Client | None, args: argparse.Namespace, out: Console) -> int:
    out.print(SCRIPTS[args.shell], end="", markup=False)
    return Exit.OK


def candidates(words: list[str], verbs: list[str], client_factory: object) -> list[str]:
    """What may come next after ``words`` (the last one is the partial word being typed)."""
    partial = words[-1] if words else ""
    done = [w for w in words[:-1] if not w.startswith("-")]
    previous = words[-2] if len(words) >= 2 else ""
    if previous in ("-o", "--output"):
        return [f for f in ("json", "yaml", "wide", "name") if f.startswith(partial)]
    if partial.startswith("-"):
        flags = ["--kubeconfig", "--context", "--output", "--timeout", "--help"]
        return [f for f in flags if f.startswith(partial)]
    if not done:
        return [v for v in verbs if v.startswith(partial)]
    if done[0] == "completion":
        return [s for s in SCRIPTS if s.startswith(partial)]
    if done[0] in NAME_VERBS and len(done) == 1 and callable(client_factory):
        try:
            client: Client = client_factory()
            names = {p["metadata"]["name"] for p in fetch.list_plans(client)}
            for r in fetch.list_refreshes(client):
                names.add(r["metadata"]["name"])
                names.add(r["spec"]["nodeName"])
        except CliError:
            return []
        return sorted(n for n in names if n.startswith(partial))
    return []
