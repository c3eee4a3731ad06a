// Validates an OpenAPI document with @apidevtools/swagger-parser (the
// OpenAPI 3.1 schema, then its own checks: $refs resolve, path parameters
// declared, operationIds unique, ...). Prints "valid <title> <version> <n>
// paths"; exits 1 with the validator's message if the document is invalid.
//   node validate.mjs FILE
import SwaggerParser from "@apidevtools/swagger-parser";

try {
  const api = await SwaggerParser.validate(process.argv[2]);
  console.log(`valid ${api.info.title} ${api.info.version} ${Object.keys(api.paths).length} paths`);
} catch (e) {
  console.log(`invalid: ${String(e.message).slice(0, 2000)}`);
  process.exit(1);
}
