// node ajv_strict.js AJV_FOLDER SCHEMA DATA...: compile SCHEMA with ajv 8 in strict mode (as SchemaStore's
// checks do) and validate each DATA file (JSON); print "valid FILE" or "invalid FILE ERRORS" per file.
// A schema that strict mode refuses prints "compile: MESSAGE" and exits 2.
const fs = require("fs");
const path = require("path");
const [folder, schemaFile, ...files] = process.argv.slice(2);
const Ajv = require(path.join(folder, "node_modules", "ajv")).default;
const ajv = new Ajv({ strict: true, allErrors: true });
let validate;
try {
  validate = ajv.compile(JSON.parse(fs.readFileSync(schemaFile, "utf8")));
} catch (e) {
  console.log("compile: " + e.message);
  process.exit(2);
}
for (const file of files) {
  const ok = validate(JSON.parse(fs.readFileSync(file, "utf8")));
  console.log(ok ? "valid " + file : "invalid " + file + " " + JSON.stringify(validate.errors));
}
