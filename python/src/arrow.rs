//! Tables in and out through the Arrow C stream interface (the PyCapsule
//! protocol): pyarrow tables, polars frames and anything else with
//! `__arrow_c_stream__` come in as polars frames without copying their
//! buffers; tables go out as a stream that pyarrow, polars or DuckDB read.

use polars::prelude::{CompatLevel, DataFrame, PlSmallStr, SchemaExt};
use polars_arrow::array::{Array, StructArray};
use polars_arrow::datatypes::{ArrowDataType, Field};
use polars_arrow::ffi::{ArrowArrayStream, ArrowArrayStreamReader, export_iterator};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods};

use crate::ChurnError;

const STREAM: &std::ffi::CStr = c"arrow_array_stream";

/// Reads `table` (anything with `__arrow_c_stream__`) into a frame; `what`
/// names the argument in errors.
pub fn import(table: &Bound<'_, PyAny>, what: &str) -> PyResult<DataFrame> {
    if !table.hasattr("__arrow_c_stream__")? {
        return Err(ChurnError::new_err(format!(
            "{what}: expected a pyarrow Table, a polars DataFrame or another Arrow \
             stream (an object with __arrow_c_stream__), got {}",
            table.get_type().name()?
        )));
    }
    let capsule = table.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>().map_err(|_| {
        ChurnError::new_err(format!(
            "{what}: __arrow_c_stream__ did not return a capsule"
        ))
    })?;
    let pointer = capsule.pointer_checked(Some(STREAM))?;
    // SAFETY: a capsule named "arrow_array_stream" holds an ArrowArrayStream
    // (the PyCapsule protocol); moving it out and leaving a released stream
    // behind is how the protocol hands over ownership.
    let stream = unsafe {
        std::ptr::replace(
            pointer.as_ptr().cast::<ArrowArrayStream>(),
            ArrowArrayStream::empty(),
        )
    };
    let error = |e: polars::prelude::PolarsError| ChurnError::new_err(format!("{what}: {e}"));
    // SAFETY: the stream came from the producer through the protocol above.
    let mut reader = unsafe { ArrowArrayStreamReader::try_new(Box::new(stream)) }.map_err(error)?;
    let fields = match reader.field().dtype() {
        ArrowDataType::Struct(fields) => fields.clone(),
        other => {
            return Err(ChurnError::new_err(format!(
                "{what}: an Arrow stream of {other:?}, not of record batches"
            )));
        }
    };
    let mut frame: Option<DataFrame> = None;
    // SAFETY: as above; each batch is imported with the stream's own schema.
    while let Some(batch) = unsafe { reader.next() } {
        let batch = batch.map_err(error)?;
        let Some(batch) = batch.as_any().downcast_ref::<StructArray>() else {
            return Err(ChurnError::new_err(format!(
                "{what}: a batch that is not a struct array"
            )));
        };
        let part = DataFrame::try_from(batch.clone()).map_err(error)?;
        match &mut frame {
            None => frame = Some(part),
            Some(frame) => {
                frame.vstack_mut_owned(part).map_err(error)?;
            }
        }
    }
    // Left in the producer's chunks: readers slice and make each slice
    // contiguous as they go, so a rechunk here would copy everything twice.
    match frame {
        Some(frame) => Ok(frame),
        None => {
            let empty = StructArray::new_empty(ArrowDataType::Struct(fields));
            DataFrame::try_from(empty).map_err(error)
        }
    }
}

/// A table on its way out: an Arrow C stream that the first reader takes.
/// `pyarrow.table(t)`, `polars.DataFrame(t)` and DuckDB accept it.
#[pyclass(module = "churn._churn", name = "ArrowStream")]
pub struct ArrowStream {
    frame: Option<DataFrame>,
}

impl ArrowStream {
    pub fn new(frame: DataFrame) -> Self {
        ArrowStream { frame: Some(frame) }
    }
}

#[pymethods]
impl ArrowStream {
    /// The PyCapsule protocol: hands the table over as an Arrow C stream
    /// (once; `requested_schema` is not supported and ignored).
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &mut self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let frame = self.frame.take().ok_or_else(|| {
            ChurnError::new_err("this table was already read (an Arrow stream is read once)")
        })?;
        PyCapsule::new_with_value(py, export(frame), STREAM)
    }
}

/// A frame as an Arrow C stream of record batches. Large strings (not string
/// views), so that older Arrow readers, Spark's among them, read it.
fn export(mut frame: DataFrame) -> ArrowArrayStream {
    frame.rechunk_mut();
    let level = CompatLevel::oldest();
    let schema = frame.schema().to_arrow(level);
    let fields: Vec<Field> = schema.iter_values().cloned().collect();
    let dtype = ArrowDataType::Struct(fields.clone());
    let batches: Vec<Box<dyn Array>> = frame
        .iter_chunks(level, false)
        .map(|batch| {
            let rows = batch.height();
            StructArray::new(dtype.clone(), rows, batch.into_arrays(), None).boxed()
        })
        .collect();
    let field = Field::new(PlSmallStr::EMPTY, dtype, false);
    export_iterator(Box::new(batches.into_iter().map(Ok)), field)
}
