import { stringify as toYaml } from 'yaml';
import { isJsonObject, type JsonObject, type JsonValue } from './json.js';

/**
 * `/openapi/v2` in the form kubectl asks for it: client-go's discovery client
 * sends `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
 * only and feeds the body straight to `proto.Unmarshal` into gnostic's
 * `openapi_v2.Document`, so a JSON answer cannot be read by it. This encodes
 * the Swagger 2.0 document the fake publishes as that message, with the field
 * numbers of gnostic's OpenAPIv2.proto, for the parts the document uses
 * (paths with query/path/body parameters and responses, definitions with
 * properties, items, additionalProperties, refs and vendor extensions, which
 * gnostic carries as YAML text).
 */
export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';
/**
 * What the real server (kube-openapi's handler) names the body it returns:
 * the same type with a dot for the `@`, which Go's mime parser can read.
 */
export const OPENAPI_V2_PROTOBUF_RETURNED = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

/** A protobuf message being written: fields appended in order, nested messages length-delimited. */
class ProtoWriter {
  private readonly parts: Buffer[] = [];

  private varint(value: number): void {
    const bytes: number[] = [];
    let v = value;
    while (v > 0x7f) {
      bytes.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    bytes.push(v);
    this.parts.push(Buffer.from(bytes));
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  string(field: number, value: string | undefined): this {
    if (value === undefined || value === '') return this;
    const bytes = Buffer.from(value, 'utf8');
    this.tag(field, 2);
    this.varint(bytes.length);
    this.parts.push(bytes);
    return this;
  }

  strings(field: number, values: readonly string[] | undefined): this {
    for (const v of values ?? []) {
      const bytes = Buffer.from(v, 'utf8');
      this.tag(field, 2);
      this.varint(bytes.length);
      this.parts.push(bytes);
    }
    return this;
  }

  bool(field: number, value: boolean | undefined): this {
    if (!value) return this;
    this.tag(field, 0);
    this.varint(1);
    return this;
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    const bytes = inner.finish();
    this.tag(field, 2);
    this.varint(bytes.length);
    this.parts.push(bytes);
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const asString = (v: JsonValue | undefined): string | undefined => (typeof v === 'string' ? v : undefined);
const asStrings = (v: JsonValue | undefined): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);

/** NamedAny entries for the `x-` keys of an object, values as YAML (gnostic's `Any.yaml`). */
function vendorExtensions(w: ProtoWriter, field: number, obj: JsonObject): void {
  for (const [key, value] of Object.entries(obj)) {
    if (!key.startsWith('x-')) continue;
    w.message(field, (named) => named.string(1, key).message(2, (any) => any.string(2, toYaml(value))));
  }
}

/** openapi_v2.Schema. */
function writeSchema(w: ProtoWriter, schema: JsonObject): void {
  w.string(1, asString(schema['$ref']));
  w.string(2, asString(schema['format']));
  w.string(3, asString(schema['title']));
  w.string(4, asString(schema['description']));
  w.bool(16, schema['uniqueItems'] === true);
  w.strings(19, asStrings(schema['required']));
  const additional = schema['additionalProperties'];
  if (isJsonObject(additional)) w.message(21, (item) => item.message(1, (s) => writeSchema(s, additional)));
  else if (typeof additional === 'boolean') w.message(21, (item) => item.bool(2, additional));
  if (typeof schema['type'] === 'string') w.message(22, (t) => t.strings(1, [schema['type'] as string]));
  const items = schema['items'];
  if (isJsonObject(items)) w.message(23, (list) => list.message(1, (s) => writeSchema(s, items)));
  for (const part of Array.isArray(schema['allOf']) ? schema['allOf'] : []) {
    if (isJsonObject(part)) w.message(24, (s) => writeSchema(s, part));
  }
  const properties = schema['properties'];
  if (isJsonObject(properties)) {
    w.message(25, (props) => {
      for (const [name, prop] of Object.entries(properties)) {
        if (isJsonObject(prop)) props.message(1, (named) => named.string(1, name).message(2, (s) => writeSchema(s, prop)));
      }
    });
  }
  vendorExtensions(w, 31, schema);
}

/** openapi_v2.ParametersItem holding a body, query or path parameter. */
function writeParameter(w: ProtoWriter, param: JsonObject): void {
  w.message(1, (p) => {
    if (param['in'] === 'body') {
      p.message(1, (body) => {
        body.string(1, asString(param['description'])).string(2, asString(param['name'])).string(3, 'body').bool(4, param['required'] === true);
        const schema = param['schema'];
        if (isJsonObject(schema)) body.message(5, (s) => writeSchema(s, schema));
      });
      return;
    }
    p.message(2, (nonBody) => {
      if (param['in'] === 'path') {
        nonBody.message(4, (sub) =>
          sub
            .bool(1, param['required'] === true)
            .string(2, 'path')
            .string(3, asString(param['description']))
            .string(4, asString(param['name']))
            .string(5, asString(param['type']))
            .bool(19, param['uniqueItems'] === true),
        );
      } else {
        nonBody.message(3, (sub) =>
          sub
            .bool(1, param['required'] === true)
            .string(2, 'query')
            .string(3, asString(param['description']))
            .string(4, asString(param['name']))
            .string(6, asString(param['type']))
            .bool(20, param['uniqueItems'] === true),
        );
      }
    });
  });
}

/** openapi_v2.Operation. */
function writeOperation(w: ProtoWriter, op: JsonObject): void {
  w.strings(1, asStrings(op['tags']));
  w.string(3, asString(op['description']));
  w.string(5, asString(op['operationId']));
  w.strings(6, asStrings(op['produces']));
  w.strings(7, asStrings(op['consumes']));
  for (const param of Array.isArray(op['parameters']) ? op['parameters'] : []) {
    if (isJsonObject(param)) w.message(8, (p) => writeParameter(p, param));
  }
  const responses = op['responses'];
  if (isJsonObject(responses)) {
    w.message(9, (rs) => {
      for (const [code, response] of Object.entries(responses)) {
        if (!isJsonObject(response)) continue;
        rs.message(1, (named) =>
          named.string(1, code).message(2, (value) =>
            value.message(1, (r) => {
              r.string(1, asString(response['description']));
              const schema = response['schema'];
              if (isJsonObject(schema)) r.message(2, (item) => item.message(1, (s) => writeSchema(s, schema)));
            }),
          ),
        );
      }
    });
  }
  w.strings(10, asStrings(op['schemes']));
  vendorExtensions(w, 13, op);
}

const PATH_ITEM_FIELDS: Record<string, number> = { get: 2, put: 3, post: 4, delete: 5, options: 6, head: 7, patch: 8 };

/** The Swagger 2.0 `doc` as an encoded openapi_v2.Document. */
export function encodeOpenApiV2(doc: JsonObject): Buffer {
  const w = new ProtoWriter();
  w.string(1, asString(doc['swagger']));
  const info = isJsonObject(doc['info']) ? doc['info'] : {};
  w.message(2, (i) => i.string(1, asString(info['title'])).string(2, asString(info['version'])));
  const paths = isJsonObject(doc['paths']) ? doc['paths'] : {};
  w.message(8, (ps) => {
    for (const [path, item] of Object.entries(paths)) {
      if (!isJsonObject(item)) continue;
      ps.message(2, (named) =>
        named.string(1, path).message(2, (pi) => {
          for (const [method, field] of Object.entries(PATH_ITEM_FIELDS)) {
            const op = item[method];
            if (isJsonObject(op)) pi.message(field, (o) => writeOperation(o, op));
          }
          for (const param of Array.isArray(item['parameters']) ? item['parameters'] : []) {
            if (isJsonObject(param)) pi.message(9, (p) => writeParameter(p, param));
          }
        }),
      );
    }
  });
  const definitions = isJsonObject(doc['definitions']) ? doc['definitions'] : {};
  w.message(9, (defs) => {
    for (const [name, schema] of Object.entries(definitions)) {
      if (isJsonObject(schema)) defs.message(1, (named) => named.string(1, name).message(2, (s) => writeSchema(s, schema)));
    }
  });
  return w.finish();
}
