//! `omsyn bench copy`: the baseline a new base's first sync is held against — copying the peer's
//! store file over the same path. One QUIC stream on an endpoint with the transport settings
//! nodes use (the link proxy carries UDP only, so scp or rsync over TCP cannot cross it; one
//! stream under the same congestion control is what they would get). With `--compress` each
//! 1 MiB block is DEFLATE-compressed (level 1, as `gzip -1` or `rsync -z` would) by a thread of
//! its own while the previous block is on the wire, and inflated on arrival.
//!
//! The serving side prints `{"id", "listen"}` and serves one copy; the receiving side writes the
//! file, fsyncs it and prints `{"file_bytes", "stream_bytes", "ms"}`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::cli::CopyArgs;

pub(crate) const COPY_ALPN: &[u8] = b"omsyn/bench/copy-file";

/// A block read, compressed and sent at a time.
const BLOCK_BYTES: usize = 1 << 20;
/// Blocks compressed ahead of the stream.
const AHEAD: usize = 4;

/// `omsyn bench copy`.
pub(crate) fn run(args: &CopyArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match (&args.file, &args.peer, &args.out) {
            (Some(file), None, None) => serve(file, args).await,
            (None, Some(peer), Some(out)) => receive(peer, out, args.compress).await,
            _ => bail!("give --file and --listen to serve, or --peer and --out to receive"),
        }
    })
}

async fn serve(file: &std::path::Path, args: &CopyArgs) -> Result<()> {
    let listen = args.listen.unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
    let endpoint = crate::bench_sync::endpoint(listen, COPY_ALPN).await?;
    outln!(
        "{}",
        json!({ "id": endpoint.id().to_string(), "listen": endpoint.bound_sockets()[0] })
    );
    crate::bench_field::flush();
    let conn = endpoint.accept().await.context("no connection")?.await?;
    let (mut send, _recv) = conn.accept_bi().await?;
    let mut blocks = read_blocks(file.to_owned(), args.compress);
    while let Some(block) = blocks.recv().await {
        let block = block?;
        if args.compress {
            send.write_all(&(block.len() as u32).to_le_bytes()).await?;
        }
        send.write_all(&block).await?;
    }
    send.finish()?;
    // The receiver closes once it has written everything; closing first would drop what it has
    // not read yet.
    let _ = tokio::time::timeout(Duration::from_secs(30), conn.closed()).await;
    endpoint.close().await;
    Ok(())
}

/// The file's blocks, read (and compressed) by a thread of its own, a few ahead of the stream.
fn read_blocks(
    file: std::path::PathBuf,
    compress: bool,
) -> tokio::sync::mpsc::Receiver<Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(AHEAD);
    std::thread::spawn(move || {
        let result = (|| -> Result<()> {
            let mut f =
                std::fs::File::open(&file).with_context(|| format!("--file {}", file.display()))?;
            loop {
                let mut block = vec![0u8; BLOCK_BYTES];
                let n = read_full(&mut f, &mut block)?;
                if n == 0 {
                    return Ok(());
                }
                block.truncate(n);
                let block = if compress { deflate(&block)? } else { block };
                if tx.blocking_send(Ok(block)).is_err() {
                    return Ok(());
                }
            }
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn deflate(block: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(block)?;
    Ok(encoder.finish()?)
}

fn inflate(block: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(BLOCK_BYTES);
    flate2::read::DeflateDecoder::new(block).read_to_end(&mut out)?;
    Ok(out)
}

async fn receive(peer: &str, out: &std::path::Path, compress: bool) -> Result<()> {
    let started = Instant::now();
    let endpoint = crate::bench_sync::endpoint(([0, 0, 0, 0], 0).into(), COPY_ALPN).await?;
    let (id, addr) = peer.split_once('@').context("--peer ID@ADDR")?;
    let addr = iroh::EndpointAddr::new(id.parse()?).with_ip_addr(addr.parse()?);
    let conn = endpoint.connect(addr, COPY_ALPN).await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    // The serving side learns of the stream only once something is sent on it.
    send.write_all(b"go").await?;
    let mut file =
        std::fs::File::create(out).with_context(|| format!("--out {}", out.display()))?;
    let mut stream_bytes = 0u64;
    if compress {
        let mut len = [0u8; 4];
        while read_exact_or_end(&mut recv, &mut len).await? {
            let mut block = vec![0u8; u32::from_le_bytes(len) as usize];
            recv.read_exact(&mut block).await?;
            stream_bytes += 4 + block.len() as u64;
            tokio::task::block_in_place(|| -> Result<()> {
                Ok(file.write_all(&inflate(&block)?)?)
            })?;
        }
    } else {
        let mut buf = vec![0u8; BLOCK_BYTES];
        while let Some(n) = recv.read(&mut buf).await? {
            stream_bytes += n as u64;
            tokio::task::block_in_place(|| file.write_all(&buf[..n]))?;
        }
    }
    tokio::task::block_in_place(|| file.sync_all())?;
    conn.close(0u32.into(), b"done");
    endpoint.close().await;
    let file_bytes = std::fs::metadata(out)?.len();
    outln!(
        "{}",
        json!({
            "file_bytes": file_bytes,
            "stream_bytes": stream_bytes,
            "ms": started.elapsed().as_secs_f64() * 1000.0,
        })
    );
    Ok(())
}

/// Fills `buf`, or returns false at a clean end of the stream.
async fn read_exact_or_end(recv: &mut iroh::endpoint::RecvStream, buf: &mut [u8]) -> Result<bool> {
    let mut n = 0;
    while n < buf.len() {
        match recv.read(&mut buf[n..]).await? {
            Some(k) => n += k,
            None if n == 0 => return Ok(false),
            None => bail!("the stream ended inside a block's length"),
        }
    }
    Ok(true)
}
