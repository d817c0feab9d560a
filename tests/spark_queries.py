"""Run wirecorr's example queries with Spark in local mode over an export directory.

Usage: python tests/spark_queries.py DIR LOG4J2_PROPERTIES > answers.json

Run as a child process so its JVM can be bounded by a timeout and never outlives the test.
Each table is registered exactly as a fleet's Spark job would read it: the table's
directory, partitions discovered from the host=…/date=… path. Prints {name: [row, …]} as JSON.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    root, log_config = sys.argv[1], sys.argv[2]
    from pyspark.sql import SparkSession

    from wirecorr.views.columnar_sql import EXAMPLES, TABLES

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("wirecorr-export-test")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "512m")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        # Start-up, not throughput: C1 only and no generated code halve a run on the test's tiny tables.
        .config("spark.sql.codegen.wholeStage", "false")
        .config(
            "spark.driver.extraJavaOptions",
            f"-Dlog4j2.configurationFile=file:{log_config} -XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        )
        .getOrCreate()
    )
    try:
        spark.sparkContext.setLogLevel("ERROR")
        for table in TABLES:
            spark.read.option("mergeSchema", "true").parquet(os.path.join(root, table)).createOrReplaceTempView(table)
        answers = {}
        for name, sql in EXAMPLES.items():
            answers[name] = [row.asDict() for row in spark.sql(sql).collect()]
    finally:
        spark.stop()
    json.dump(answers, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
