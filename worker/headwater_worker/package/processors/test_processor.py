"""The seed's test processor: a small GeoTIFF per boundary, made without any source."""

from __future__ import annotations

from ..metadata import DataLicense, ProcessorMetadata
from ..processor import Processor, ProcessorContext, ProvenanceLog
from ..raster import write_test_raster


class Version1(Processor):
    metadata = ProcessorMetadata(
        name="test_processor",
        version="version_1",
        description="A test processor for nightlights",
        dataset_name="nightlights",
        data_author="Nightlights Author",
        data_title="Test raster",
        data_title_long="A small test raster over the boundary",
        data_summary="A 64 by 64 pixel GeoTIFF over the boundary's bounds: 1 inside the boundary, 0 outside.",
        data_citation="",
        data_license=DataLicense(
            name="CC-BY-4.0",
            title="Creative Commons Attribution 4.0",
            path="https://creativecommons.org/licenses/by/4.0/",
        ),
        data_origin_url="http://url",
        data_formats=["GeoTIFF"],
    )

    def generate(self, context: ProcessorContext) -> ProvenanceLog:
        context.report(30, "writing the test raster")
        output = context.output_file("tif")
        summary = write_test_raster(context.boundary.geometry, output)
        context.report(80, "storing the test raster")
        context.publish(output)
        return {"raster": summary.as_log()}
