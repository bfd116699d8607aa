//! The protobuf codec every generated service and client uses: prost's, with
//! smaller starting buffers.
//!
//! tonic starts each call's encode and decode buffers at 8 KiB. An app stream
//! is a long-lived call that mostly sits idle, so those two buffers were a
//! third of what an idle registered app cost us (see docs/performance.md).
//! Our messages are small; buffers still grow on demand for large ones, and
//! the yield threshold (how much is batched per write) stays tonic's.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Starting size of a call's encode and decode buffers: enough for a small
/// callback. A buffer keeps what it grew to, so a stream pays for growth
/// once; an idle one holds 64 bytes instead of 1 KiB each way (1.5 KiB less
/// per idle app stream than 1 KiB buffers, measured with `bench --idle`).
const BUFFER_BYTES: usize = 64;
/// tonic's default: encoded messages are batched into writes up to this size.
const YIELD_THRESHOLD: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD)
}

/// Named in build.rs (`codec_path`); the generated code calls `default()`.
#[derive(Debug, Clone, Copy)]
pub struct LeanCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        LeanCodec(PhantomData)
    }
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}
