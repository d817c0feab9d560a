# wirecorr in a container. Capture needs NET_RAW (+ NET_ADMIN for a large kernel buffer),
# tracing needs SYS_PTRACE; see README.md for the `docker run` line.
FROM python:3.11-slim-bookworm

RUN echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tcpdump tshark strace \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/wirecorr
COPY pyproject.toml setup.py README.md LICENSE ./
COPY wirecorr ./wirecorr
COPY captures ./captures
# The packet core is a Cython extension: a C compiler for the build, removed after it.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install --no-cache-dir . \
 && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*

WORKDIR /data
ENTRYPOINT ["wirecorr"]
CMD ["--help"]
