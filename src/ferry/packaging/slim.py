"""What a stack image leaves out of the Debian base it was built on, as the shell script its
``slim`` stage runs (the stack's last stage then copies the trimmed tree into one layer, so
nothing removed here is still counted in a lower layer).

Removed: Debian's package tooling and its databases (apt, dpkg, their file lists, keyrings) and
what only it, logins or disks need (perl, debconf, PAM, util-linux, e2fsprogs, gnutls and
friends); documentation except copyright files; glibc's iconv modules (only ``iconv_open`` on
a named non-Unicode charset loads them, and nothing in Python, numpy, pandas, scipy or
scikit-learn calls it: such a call would fail with EINVAL, not crash); the stdlib's bytecode
(a model's build compiles what serving imports, see ferry.packaging.warm). Kept: Python, its
stdlib and every library its extension modules link, CA certificates, tzdata, coreutils, a
shell, tar (``kubectl cp`` needs it), Debian's pip wheel (model builds install a version's
extra requirements with it), and ``/var/lib/dpkg/status``, so image scanners still see which
Debian packages (and versions) the image holds.

The script fails the build when any ELF file in the image links a library that is no longer
there (compared with the list before trimming: a few bundled wheel libraries resolve their
siblings only when loaded by their parent, and ldd reports them either way).
"""

from __future__ import annotations

# removed first; their maintainer scripts need perl and debconf, and dpkg itself needs diff,
# all removed in a second pass
PURGED = (
    "apt", "libapt-pkg6.0", "gpgv", "debian-archive-keyring", "libgnutls30", "libidn2-0",
    "libunistring2", "libnettle8", "libhogweed6", "libp11-kit0", "libtasn1-6", "libgcrypt20",
    "libgpg-error0", "libsystemd0", "libudev1", "liblz4-1", "libxxhash0", "libseccomp2",
    "e2fsprogs", "libext2fs2", "libss2", "logsave", "util-linux", "util-linux-extra", "mount",
    "libmount1", "libblkid1", "libsmartcols1", "bsdutils", "login", "passwd", "libpam-modules",
    "libpam-modules-bin", "libpam-runtime", "libpam0g", "libsemanage2", "libsemanage-common",
    "libsepol2", "libaudit1", "libaudit-common", "libcap-ng0", "sysvinit-utils",
)  # fmt: skip
PURGED_LAST = ("adduser", "init-system-helpers", "debconf", "perl-base", "diffutils")
RUNTIME_UID = 10001

SCRIPT = """\
#!/bin/sh
# Trim this root filesystem to what `ferry serve` needs (see ferry.packaging.slim).
set -eu
export DEBIAN_FRONTEND=noninteractive

missing_libraries() {
    find / -xdev -type f \\( -name '*.so*' -o -perm -u+x \\) 2>/dev/null | sort \\
    | while read -r f; do
        ldd "$f" 2>/dev/null | sed -n "s|^[[:space:]]*\\([^ ]*\\) => not found.*|$f \\1|p"
    done
}

purge() {
    present=""
    for package in "$@"; do
        if dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'ok installed'; then
            present="$present $package"
        fi
    done
    # a maintainer script may fail once its helpers are gone: checked below instead
    [ -z "$present" ] || dpkg --purge --force-remove-essential --force-depends $present \\
        >/dev/null 2>&1 || true
}

missing_libraries > /tmp/missing-before
# the serving user, made while useradd is still here (the model's build then finds it)
id -u ferry >/dev/null 2>&1 || useradd --system --uid @UID@ --user-group --no-create-home \\
    --home-dir /nonexistent --shell /usr/sbin/nologin ferry 2>/dev/null
purge @PURGED@
purge @PURGED_LAST@
left=$(dpkg-query -W -f '${Package} ${Status}\\n' @PURGED@ @PURGED_LAST@ 2>/dev/null \\
    | grep -v 'not-installed' || true)
if [ -n "$left" ]; then echo "slim: still installed: $left" >&2; exit 1; fi

# dpkg cannot remove itself: its files go, and its entry in the status file (kept for image
# scanners, listing exactly what is left)
dpkg -L dpkg | while read -r f; do
    if [ -f "$f" ] && [ "$f" != /var/lib/dpkg/status ]; then rm -f "$f"; fi
done
awk -v RS= -v ORS='\\n\\n' '!/^Package: dpkg\\n/' /var/lib/dpkg/status > /tmp/status
mv /tmp/status /var/lib/dpkg/status
rm -rf /var/lib/apt /var/cache/* /var/log/* /var/lib/dpkg/info /var/lib/dpkg/*-old \\
    /var/lib/dpkg/available /var/lib/dpkg/triggers /var/lib/dpkg/updates \\
    /usr/share/man /usr/share/info /usr/share/locale /usr/share/lintian \\
    /usr/share/bash-completion /usr/share/keyrings /usr/lib/x86_64-linux-gnu/gconv \\
    /etc/apt /etc/dpkg /root/.cache /tmp/ferry-stack
find /usr/share/doc -type f ! -name copyright -delete
find /usr/share/doc -type d -empty -delete
find /usr/lib/python3* -depth -type d -name __pycache__ -exec rm -rf {} +

missing_libraries > /tmp/missing-after
if ! diff_out=$(grep -vxF -f /tmp/missing-before /tmp/missing-after); then diff_out=""; fi
rm -f /tmp/missing-before /tmp/missing-after
if [ -n "$diff_out" ]; then
    echo "slim: libraries needed but removed:" >&2
    echo "$diff_out" >&2
    exit 1
fi
"""


def slim_script() -> str:
    """The trimming script with its package lists filled in."""
    return (
        SCRIPT.replace("@PURGED@", " ".join(PURGED))
        .replace("@PURGED_LAST@", " ".join(PURGED_LAST))
        .replace("@UID@", str(RUNTIME_UID))
    )
