use wyrmhole::Model;

#[derive(Model)]
struct ListMember {
    id: i32,
    list_id: String,
}

#[derive(Model)]
#[wyrm(has_many(members = ListMember, via = list_id))]
struct TodoList {
    id: i32,
}

fn main() {}
