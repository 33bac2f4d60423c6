//! The request-response codec shared by the sync and query protocols (so
//! neither `network` nor `rpc` owns it): one postcard value per stream, behind a
//! 4-byte big-endian length with a cap, decoded canonically. A peer can never
//! make us allocate more than the cap, however large a length it claims.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{decode, encode};

/// Encodes requests of type `Req` and responses of type `Resp`, each capped.
pub struct PostcardCodec<Req, Resp> {
    max_request: usize,
    max_response: usize,
    _types: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> PostcardCodec<Req, Resp> {
    pub fn new(max_request: usize, max_response: usize) -> Self {
        PostcardCodec { max_request, max_response, _types: PhantomData }
    }
}

impl<Req, Resp> Clone for PostcardCodec<Req, Resp> {
    fn clone(&self) -> Self {
        PostcardCodec::new(self.max_request, self.max_response)
    }
}

/// What a frame's buffer starts with; it grows with what actually arrives.
const INITIAL_FRAME_CAPACITY: usize = 64 * 1024;

/// Reads one length-prefixed frame of at most `cap` bytes and decodes it.
pub async fn read_frame<T, R>(io: &mut R, cap: usize) -> io::Result<T>
where
    T: Serialize + DeserializeOwned,
    R: AsyncRead + Unpin + Send,
{
    let mut len_bytes = [0u8; 4];
    io.read_exact(&mut len_bytes).await?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the cap of {cap}"),
        ));
    }
    // Grown as bytes arrive, never reserved at the claimed length: a peer
    // that claims the cap and sends nothing costs us a small buffer.
    let mut buf = Vec::with_capacity(len.min(INITIAL_FRAME_CAPACITY));
    let want = u64::try_from(len).unwrap_or(u64::MAX);
    io.take(want).read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("message ended after {} of its {len} bytes", buf.len()),
        ));
    }
    decode(&buf, cap).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Writes one value as a length-prefixed frame, refusing to send more than `cap`.
pub async fn write_frame<T, W>(io: &mut W, value: &T, cap: usize) -> io::Result<()>
where
    T: Serialize + Sync,
    W: AsyncWrite + Unpin + Send,
{
    let bytes = encode(value);
    if bytes.len() > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("message of {} bytes is over the cap of {cap}", bytes.len()),
        ));
    }
    let len =
        u32::try_from(bytes.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

impl<Req, Resp> libp2p::request_response::Codec for PostcardCodec<Req, Resp>
where
    Req: Serialize + DeserializeOwned + Send + Sync,
    Resp: Serialize + DeserializeOwned + Send + Sync,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req, self.max_request).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Resp) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, self.max_response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[test]
    fn frames_round_trip_and_caps_hold() {
        futures::executor::block_on(async {
            let mut buf = Cursor::new(Vec::new());
            write_frame(&mut buf, &vec![1u32, 2, 3], 100).await.unwrap();
            let mut read = Cursor::new(buf.into_inner());
            let back: Vec<u32> = read_frame(&mut read, 100).await.unwrap();
            assert_eq!(back, vec![1, 2, 3]);

            let mut big = Cursor::new(Vec::new());
            assert!(write_frame(&mut big, &vec![0u8; 200], 100).await.is_err());
        });
    }

    #[test]
    fn a_length_claiming_gigabytes_is_refused_before_allocating() {
        futures::executor::block_on(async {
            let mut frame = Cursor::new(vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
            let err = read_frame::<Vec<u8>, _>(&mut frame, 1024).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        });
    }

    #[test]
    fn a_frame_claiming_the_cap_reserves_only_what_arrives() {
        futures::executor::block_on(async {
            // Claims 8 MiB, sends three bytes: refused as truncated, and the
            // buffer never grew past what came.
            let mut frame = Cursor::new(vec![0x00, 0x80, 0x00, 0x00, 1, 2, 3]);
            let err = read_frame::<Vec<u8>, _>(&mut frame, 16 * 1024 * 1024).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        });
    }

    #[test]
    fn non_canonical_and_trailing_bytes_are_refused() {
        futures::executor::block_on(async {
            // The value 1u32 as an over-long varint, then a trailing byte.
            for body in [vec![0x81u8, 0x00], vec![0x01, 0x00]] {
                let mut frame = vec![0, 0, 0, body.len() as u8];
                frame.extend(body);
                assert!(read_frame::<u32, _>(&mut Cursor::new(frame), 16).await.is_err());
            }
        });
    }
}
