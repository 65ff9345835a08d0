use wyrmhole::Model;

#[derive(Model)]
struct ListMember {
    id: i32,
    list_id: i32,
}

#[derive(Model)]
#[wyrm(has_many(members = ListMember))]
struct TodoList {
    id: i32,
}

fn main() {}
