// Decodes a tangle InvitePreview (hex on argv[2]) with protobufjs, the runtime Osmium's SDK
// uses, from types written from the field numbers of DESIGN.md §1 (the real Osmium shapes:
// Group.owner and Community.owner are bool). Prints the message as JSON; exits 1 if the
// bytes do not decode.
import protobuf from "protobufjs";

const schema = `
syntax = "proto3";
package osmium;
message User { fixed64 id = 1; string name = 2; optional string username = 3; bool bot = 6; }
message Group { fixed64 id = 1; string name = 2; bool owner = 3; repeated fixed64 participant_ids = 4; }
message Community { fixed64 id = 1; bool owner = 2; string name = 3; fixed64 permissions = 5; optional string username = 7; }
message InvitePreview {
  string code = 1; fixed64 creator_id = 2; fixed64 target_id = 3; int32 target_type = 4;
  optional fixed64 expires_at = 5; optional User creator = 6;
  oneof target_info { Community community = 7; Group chat = 8; User user = 9; }
}
`;
const root = protobuf.parse(schema).root;
const InvitePreview = root.lookupType("osmium.InvitePreview");
try {
  const msg = InvitePreview.decode(Buffer.from(process.argv[2], "hex"));
  console.log(JSON.stringify(InvitePreview.toObject(msg, { longs: String, oneofs: true })));
} catch (e) {
  console.error(`protobufjs: ${e.message}`);
  process.exit(1);
}
